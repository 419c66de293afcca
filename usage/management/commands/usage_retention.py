from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from usage.management.commands.usage_partitions import idempotency_keys_expire_reported
from usage.partitions import is_partitioned
from usage.selectors import idempotency_keys_older_count
from usage.services import (
    idempotency_cutoff,
    usage_partition_retire,
    usage_retention_months,
)


class Command(BaseCommand):
    help = (
        "Drop whole months of the usage log older than the current UTC month and the N-1 months before it. "
        "Dry run unless --apply. Each month is dropped only if the rollups hold it (stats keep reading them); "
        "its per-model totals are kept in ai_usage_retired. Rollups are never dropped. PostgreSQL only; the "
        "idempotency keys older than AICOST_IDEMPOTENCY_RETENTION_DAYS are removed too (SQLite as well)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--keep-months", type=int, required=True, help="Months kept, the current one included.")
        parser.add_argument("--apply", action="store_true", help="Drop them (default: only list them).")

    def handle(self, *args, keep_months: int, apply: bool, **options):
        if keep_months < 1:
            raise CommandError(_("--keep-months must be at least 1 (the current month is always kept)."))
        now = timezone.now()
        if apply:
            idempotency_keys_expire_reported(self.stdout, now=now)
        else:
            cutoff = idempotency_cutoff(now=now)
            self.stdout.write(
                _("would remove %(count)s idempotency key(s) created before %(cutoff)s")
                % {"count": idempotency_keys_older_count(cutoff=cutoff), "cutoff": cutoff.isoformat(timespec="seconds")}
            )
        if not is_partitioned(connection):
            self.stdout.write(_("The usage log is not partitioned on this database (SQLite?): no months to drop."))
            return
        months = usage_retention_months(keep_months=keep_months, now=now)
        if not months:
            self.stdout.write(_("Nothing older than the kept months."))
            return
        if not apply:
            for month in months:
                self.stdout.write(_("would drop %(month)s") % {"month": f"{month:%Y-%m}"})
            self.stdout.write(_("Dry run: add --apply to drop them."))
            return
        refused = 0
        for month in months:
            outcome = usage_partition_retire(month=month, now=now)
            if outcome.dropped:
                self.stdout.write(
                    _("dropped %(month)s (%(rows)s rows)") % {"month": f"{month:%Y-%m}", "rows": outcome.rows}
                )
            else:
                refused += 1
                self.stderr.write(
                    _("kept %(month)s: %(reason)s") % {"month": f"{month:%Y-%m}", "reason": outcome.reason}
                )
        if refused:
            raise SystemExit(1)
