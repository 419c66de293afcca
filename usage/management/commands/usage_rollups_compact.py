from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from usage.rollups import rollups_compact


class Command(BaseCommand):
    help = (
        "Compact the rollups' delta rows (appended by PostgreSQL batches) into one row per key now. "
        "Each recording process does this every AICOST_ROLLUP_COMPACT_SECONDS in the background; reads "
        "sum both kinds of row either way, so this only keeps the tables small (cron-safe: while another "
        "compaction holds the lock this one is a no-op, or waits --lock-timeout-ms for it)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--lock-timeout-ms",
            type=int,
            default=None,
            help="Wait this long for a running compaction to finish (default: do not wait).",
        )

    def handle(self, *args, lock_timeout_ms, **options):
        compacted = rollups_compact(lock_timeout_ms=lock_timeout_ms)
        if compacted is None:
            self.stdout.write(_("Another compaction is running; it compacts the delta rows."))
        else:
            self.stdout.write(self.style.SUCCESS(_("Compacted %(rows)s delta rollup rows.") % {"rows": compacted}))
