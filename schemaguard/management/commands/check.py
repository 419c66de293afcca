from django.core.management.commands import check
from django.db import DEFAULT_DB_ALIAS


class Command(check.Command):
    """Django's `check`, which also checks the `default` database when no --database is given, so a
    plain `python manage.py check` reports the schema guard's findings (aicost.E001...)."""

    help = check.Command.help + " Without --database, the default database is checked too (the schema guard)."

    def handle(self, *app_labels, **options):
        return super().handle(*app_labels, **{**options, "databases": options["databases"] or [DEFAULT_DB_ALIAS]})
