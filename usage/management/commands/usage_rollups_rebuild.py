from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from usage.rollups import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the hourly and daily usage rollups from the usage log (after a restore or a manual "
        "fix of the log). Months retention has dropped keep their rollups."
    )

    def handle(self, *args, **options):
        rows = rollups_rebuild()
        self.stdout.write(self.style.SUCCESS(_("Rebuilt the rollups from %(rows)s usage rows.") % {"rows": rows}))
