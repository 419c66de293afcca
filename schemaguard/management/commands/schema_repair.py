from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections
from django.utils.translation import gettext as _

from schemaguard.services import RepairPlan, schema_repair_apply, schema_repair_plan, schema_repair_sql


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
            raise CommandError(
                _("No database '%(database)s' in DATABASES (configured: %(configured)s).")
                % {"database": database, "configured": ", ".join(connections)}
            )
        try:
            plan = schema_repair_plan(using=database)
            self._print_plan(plan, database)
        except DatabaseError as error:
            message = _("Cannot read the schema of database '%(database)s': %(error)s") % {
                "database": database,
                "error": error,
            }
            raise CommandError(message.strip()) from error
        if not plan.steps:
            self.stdout.write(_("Nothing to repair.") if not plan.refused else _("Nothing schema_repair may do."))
        elif not apply:
            self.stdout.write(
                _("Dry run: %(steps)s step(s). Run with --apply to execute them.") % {"steps": len(plan.steps)}
            )
        else:
            return self._apply(plan, database)
        if plan.refused:
            raise CommandError(_("Some findings need a person (see above); schema_repair leaves them alone."))
        return None

    def _print_plan(self, plan: RepairPlan, database: str) -> None:
        for reason in plan.refused:
            self.stderr.write(_("needs a person: %(reason)s") % {"reason": reason})
        for warning in plan.warnings:
            self.stderr.write(_("warning (not a schema repair): %(warning)s") % {"warning": warning})
        if not plan.steps:
            return
        for description, _step in plan.steps:
            self.stdout.write(f"-- {description}")
        for statement in schema_repair_sql(plan=plan, using=database):
            self.stdout.write(statement)

    def _apply(self, plan: RepairPlan, database: str) -> None:
        try:
            report = schema_repair_apply(plan=plan, using=database)
        except DatabaseError as error:
            message = _("Repair failed and was rolled back; nothing changed: %(error)s") % {"error": error}
            raise CommandError(message.strip()) from error
        for finding in report.warnings:
            self.stderr.write(
                _("warning: %(id)s: %(msg)s") % {"id": finding.id, "msg": finding.msg}
                + ("\n  " + _("HINT: %(hint)s") % {"hint": finding.hint} if finding.hint else "")
            )
        if not report.healthy:
            for finding in report.errors:
                self.stderr.write(_("still wrong: %(id)s: %(msg)s") % {"id": finding.id, "msg": finding.msg})
            raise CommandError(
                _("Applied %(steps)s step(s), but the schema still differs (see above).") % {"steps": len(plan.steps)}
            )
        self.stdout.write(
            self.style.SUCCESS(
                _("Repaired (%(steps)s step(s)); the schema matches the models.") % {"steps": len(plan.steps)}
            )
        )
