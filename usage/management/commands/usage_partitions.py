from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from usage.partitions import is_partitioned, partition_months
from usage.services import (
    usage_idempotency_keys_expire,
    usage_idempotency_keys_vacuum,
    usage_partitions_ensure_ahead,
)


def idempotency_keys_expire_reported(stdout, *, now) -> None:
    """Remove the keys past the retention window (usage_idempotency_keys_expire), VACUUM the table on
    PostgreSQL so it stays flat, and say what was done."""
    expiry = usage_idempotency_keys_expire(now=now)
    if expiry.removed:
        usage_idempotency_keys_vacuum()
    stdout.write(
        _("removed %(count)s idempotency key(s) created before %(cutoff)s")
        % {"count": expiry.removed, "cutoff": expiry.cutoff.isoformat(timespec="seconds")}
    )
    if not expiry.finished:
        stdout.write(_("stopped at the time bound: the next run removes the rest"))


class Command(BaseCommand):
    help = (
        "PostgreSQL: create the usage log's monthly partitions for the current UTC month and the next "
        "AICOST_USAGE_PARTITIONS_AHEAD months where missing. Safe to run from cron (e.g. daily) and from "
        "several hosts at once. Also removes the idempotency keys older than AICOST_IDEMPOTENCY_RETENTION_DAYS, "
        "in small batches (on SQLite too)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=None, help="Months after the current one (default: setting).")

    def handle(self, *args, ahead: int | None, **options):
        idempotency_keys_expire_reported(self.stdout, now=timezone.now())
        if not is_partitioned(connection):
            self.stdout.write(_("The usage log is not partitioned on this database; no partitions to make."))
            return
        created = usage_partitions_ensure_ahead(now=timezone.now(), ahead=ahead)
        for month in created:
            self.stdout.write(_("created partition for %(month)s") % {"month": f"{month:%Y-%m}"})
        months = partition_months(connection)
        self.stdout.write(
            self.style.SUCCESS(
                _("%(count)s partition(s), %(first)s to %(last)s.")
                % {"count": len(months), "first": f"{months[0]:%Y-%m}", "last": f"{months[-1]:%Y-%m}"}
            )
            if months
            else _("No partitions.")
        )
