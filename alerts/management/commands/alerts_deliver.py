from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from alerts.models import DeliveryStatus
from alerts.services import alert_deliveries_retry_due


class Command(BaseCommand):
    help = (
        "Send the alert notifications that are due: ones whose first attempt failed (retried with exponential "
        "backoff) or never ran. Run it every minute from cron."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, default=100, help="Most deliveries to attempt in this run.")

    def handle(self, *args, limit: int, **options) -> None:
        attempted = alert_deliveries_retry_due(limit=limit)
        sent = sum(1 for delivery in attempted if delivery.status == DeliveryStatus.SENT)
        gave_up = sum(1 for delivery in attempted if delivery.status == DeliveryStatus.FAILED)
        for delivery in attempted:
            if delivery.status != DeliveryStatus.SENT:
                self.stderr.write(
                    _("alert %(alert)s via %(channel)s: %(error)s")
                    % {"alert": delivery.alert_id, "channel": delivery.channel, "error": delivery.last_error}
                )
        self.stdout.write(
            _("%(attempted)s attempted, %(sent)s sent, %(gave_up)s gave up.")
            % {"attempted": len(attempted), "sent": sent, "gave_up": gave_up}
        )
