from django.core.management.base import BaseCommand, CommandError

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
            raise CommandError("--days must be 0 or more and --calls-per-day 1 or more.")
        self._schema_healthy_or_fail()
        loaded = demo_usage_load(days=days, calls_per_day=calls_per_day)
        if loaded:
            self.stdout.write(f"Loaded {loaded} demo calls over {days} days.")
        else:
            self.stdout.write("Usage is on record already (log or rollups); demo data not loaded again.")
        login = demo_staff_login_ensure()
        if login.password is None:
            self.stdout.write(
                self.style.SUCCESS(f"Staff login: {login.username} (password unchanged)")
                + f"  To set a new one: python manage.py changepassword {DEMO_STAFF_USERNAME}"
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Staff login: {login.username} / {login.password}"))

    def _schema_healthy_or_fail(self) -> None:
        """The demo writes the usage tables: on a broken schema it would fail half-way with a raw database
        error, so it names the guard's findings and the repair instead."""
        report = schema_report()
        if report.healthy:
            return
        findings = "\n".join(f"  {finding.id}: {finding.msg}" for finding in report.errors)
        raise CommandError(
            "The database schema does not match the models; nothing was loaded.\n"
            f"{findings}\nRepair with `{report.repair_command}`, then run again."
        )
