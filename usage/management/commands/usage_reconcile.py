from django.core.management.base import BaseCommand

from usage.services import usage_counters_reconcile


class Command(BaseCommand):
    help = (
        "Recompute each model's counters (total_calls, total_cost, current_month_cost) from the usage log "
        "and report differences. Exits 1 when there are differences and --fix was not given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Set the counters to the log's figures.")

    def handle(self, *args, fix: bool, **options):
        differences = usage_counters_reconcile(fix=fix)
        for difference in differences:
            self.stdout.write(
                f"{difference.model_name}.{difference.field}: counter {difference.stored}, log {difference.from_log}"
            )
        if not differences:
            self.stdout.write(self.style.SUCCESS("Counters equal the log."))
        elif fix:
            self.stdout.write(self.style.SUCCESS(f"Fixed {len(differences)} counter(s)."))
        else:
            self.stderr.write(f"{len(differences)} counter(s) differ from the log; run with --fix to correct them.")
            raise SystemExit(1)
