from django.core.management.commands import migrate

from schemaguard.checks import schema_guard_check_paused
from schemaguard.guard import schema_report


class Command(migrate.Command):
    """Django's `migrate`, never blocked by the schema guard: Django runs the database checks for the
    database it migrates first, and the guard would fail on the very drift being migrated. The guard's
    findings are printed after migrating instead, as a warning (the exit status stays migrate's)."""

    def check(self, *args, **kwargs):
        with schema_guard_check_paused():
            return super().check(*args, **kwargs)

    def handle(self, *args, **options):
        result = super().handle(*args, **options)
        # A named target (migrate APP MIGRATION) leaves the models ahead of the schema on purpose.
        if not options["plan"] and not options["migration_name"]:
            self._warn_about_the_schema(options["database"])
        return result

    def _warn_about_the_schema(self, database: str) -> None:
        report = schema_report(using=database)
        if not report.findings:
            return
        self.stderr.write(
            self.style.WARNING(f"The schema of database '{database}' still differs from the models after migrate:")
        )
        for finding in report.findings:
            self.stderr.write(f"  {finding.id}: {finding.msg}")
            if finding.hint:
                self.stderr.write(f"    HINT: {finding.hint}")
