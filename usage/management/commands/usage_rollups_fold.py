from django.core.management.base import BaseCommand

from usage.rollups import rollups_fold


class Command(BaseCommand):
    help = (
        "Fold the pending 15-minute usage sums into the hourly and daily rollups now. Ingestion does "
        "this every AICOST_ROLLUP_FOLD_SECONDS; reads add pending sums either way, so this only keeps "
        "the pending table short (cron-safe: a fold already running makes this one a no-op)."
    )

    def handle(self, *args, **options):
        folded = rollups_fold()
        if folded is None:
            self.stdout.write("Another fold is running; it folds the pending sums.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Folded {folded} pending rollup rows."))
