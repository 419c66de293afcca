from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from dashboard.demo import DEMO_STAFF_USERNAME, demo_staff_login_ensure, demo_usage_load
from schemaguard.guard import schema_report


class Command(BaseCommand):
    help = (
        "Load demo usage (only into a database with no usage on record) and make sure the demo staff login "
        "exists, printing its password when it is new. Refuses a database whose schema does not match the models."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--calls-per-day", type=int, default=300)

    def handle(self, *args, days: int, calls_per_day: int, **options):
        if days < 0 or calls_per_day < 1:
            raise CommandError(_("--days must be 0 or more and --calls-per-day 1 or more."))
        self._schema_healthy_or_fail()
        loaded = demo_usage_load(days=days, calls_per_day=calls_per_day)
        if loaded:
            self.stdout.write(_("Loaded %(calls)s demo calls over %(days)s days.") % {"calls": loaded, "days": days})
        else:
            self.stdout.write(_("Usage is on record already (log or rollups); demo data not loaded again."))
        login = demo_staff_login_ensure()
        if login.password is None:
            self.stdout.write(
                self.style.SUCCESS(_("Staff login: %(user)s (password unchanged)") % {"user": login.username})
                + _("  To set a new one: python manage.py changepassword %(user)s") % {"user": DEMO_STAFF_USERNAME}
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    _("Staff login: %(user)s / %(password)s") % {"user": login.username, "password": login.password}
                )
            )

    def _schema_healthy_or_fail(self) -> None:
        """The demo writes the usage tables: on a broken schema it would fail half-way with a raw database
        error, so it names the guard's findings and the repair instead."""
        report = schema_report()
        if report.healthy:
            return
        findings = "\n".join(f"  {finding.id}: {finding.msg}" for finding in report.errors)
        raise CommandError(
            _("The database schema does not match the models; nothing was loaded.")
            + f"\n{findings}\n"
            + _("Repair with `%(repair)s`, then run again.") % {"repair": report.repair_command}
        )
