from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from aicost.services import schema_repair_apply, schema_repair_plan, schema_repair_sql


class Command(BaseCommand):
    help = (
        "Recreate missing tables, columns and indexes from the models without touching existing rows. "
        "Dry run by default: prints the SQL. --apply runs it in one transaction and checks again. "
        "Never drops or alters anything. Exit status: 0 when nothing needs a person (dry run) or the "
        "schema matches the models afterwards (--apply); 1 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="Run the SQL (default: only print it).")
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, apply: bool, database: str, **options):
        if database not in connections:
            raise CommandError(f"No database '{database}' in DATABASES (configured: {', '.join(connections)}).")
        try:
            plan = schema_repair_plan(using=database)
        except DatabaseError as error:
            raise CommandError(f"Cannot read the schema of database '{database}': {error}".strip()) from error
        for reason in plan.refused:
            self.stderr.write(f"needs a person: {reason}")
        for warning in plan.warnings:
            self.stderr.write(f"warning (not a schema repair): {warning}")
        if not plan.steps:
            self.stdout.write("Nothing to repair." if not plan.refused else "Nothing schema_repair may do.")
            return self._exit(healthy=not plan.refused)
        for description, _step in plan.steps:
            self.stdout.write(f"-- {description}")
        for statement in schema_repair_sql(plan=plan, using=database):
            self.stdout.write(statement)
        if not apply:
            self.stdout.write(f"Dry run: {len(plan.steps)} step(s). Run with --apply to execute them.")
            return self._exit(healthy=not plan.refused)
        try:
            report = schema_repair_apply(plan=plan, using=database)
        except DatabaseError as error:
            raise CommandError(f"Repair failed and was rolled back; nothing changed: {error}".strip()) from error
        for finding in report.warnings:
            self.stderr.write(f"warning: {finding.id}: {finding.msg}")
        if report.healthy:
            self.stdout.write(
                self.style.SUCCESS(f"Repaired ({len(plan.steps)} step(s)); the schema matches the models.")
            )
            return None
        for finding in report.errors:
            self.stderr.write(f"still wrong: {finding.id}: {finding.msg}")
        return self._exit(healthy=False)

    def _exit(self, *, healthy: bool):
        if not healthy:
            raise CommandError("Some findings need a person (see above); schema_repair left them alone.")
