from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.translation import gettext as _

from alerts.services import alerts_evaluate_all


class Command(BaseCommand):
    help = (
        "Evaluate every budget (per model and global), error rate and spend spike now, and raise the alerts "
        "due. Safe to run as often as you like (e.g. every 5 minutes from cron): each alert is raised once."
    )

    def handle(self, *args, **options) -> None:
        created = alerts_evaluate_all(now=timezone.now())
        for alert in created:
            self.stdout.write(f"[{alert.alert_level}] {alert.message}")
        self.stdout.write(self.style.SUCCESS(_("%(count)s new alert(s).") % {"count": len(created)}))
