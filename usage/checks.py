"""The usage log's partitions, as the schema guard sees them (PostgreSQL).

Registered with the guard in UsageConfig.ready(), so the deploy check, startup, the health
endpoints and `schema_repair` all know the log is partitioned by month."""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils import timezone
from django.utils.translation import gettext as _

from schemaguard.guard import REPAIR_COMMAND, ConsistencyCheck, TableLayout
from usage.consistency import (
    NO_SUMS,
    ConsistencyReading,
    MonthModel,
    Sums,
    calls_text,
    money,
    usage_consistency_read,
)
from usage.partitions import (
    LOG_TABLE,
    create_partition_sql,
    is_partitioned,
    months_due,
    parent_table_sql,
    partition_months,
)

LOG_NOT_PARTITIONED = "aicost.E010"
FUTURE_PARTITION_MISSING = "aicost.W011"


def _months_due() -> list:
    return months_due(timezone.now(), settings.AICOST_USAGE_PARTITIONS_AHEAD)


def _missing_months(connection) -> list:
    present = set(partition_months(connection))
    return [month for month in _months_due() if month not in present]


def usage_log_partition_findings(connection) -> list[CheckMessage]:
    if connection.vendor != "postgresql":
        return []
    if not is_partitioned(connection):
        return [
            Error(
                f"Table {LOG_TABLE} is a plain table; on PostgreSQL it must be range-partitioned by month "
                "(migration usage.0004 makes it so).",
                hint="Rewriting a table with its rows is a decision for a person: restore the migration's "
                "state (e.g. migrate usage 0003, then migrate) in a maintenance window.",
                obj=LOG_TABLE,
                id=LOG_NOT_PARTITIONED,
            )
        ]
    missing = _missing_months(connection)
    if not missing:
        return []
    names = ", ".join(f"{month:%Y-%m}" for month in missing)
    return [
        Warning(
            f"Table {LOG_TABLE} has no partition for {names} (the current UTC month and the next "
            f"{settings.AICOST_USAGE_PARTITIONS_AHEAD} should exist); ingestion creates one when needed, "
            "but that briefly locks the log.",
            hint=f"Run `python manage.py usage_partitions` from cron (daily), or `{REPAIR_COMMAND}`.",
            obj=LOG_TABLE,
            id=FUTURE_PARTITION_MISSING,
        )
    ]


def _create_log_table(editor) -> None:
    for statement in parent_table_sql():
        editor.execute(statement)
    for month in _months_due():
        editor.execute(create_partition_sql(month))


def _partition_repairs(connection, *, altered: bool) -> list:
    if not is_partitioned(connection):
        return []
    return [
        (f"create partition of {LOG_TABLE} for {month:%Y-%m}", lambda e, m=month: e.execute(create_partition_sql(m)))
        for month in _missing_months(connection)
    ]


def usage_log_layout() -> TableLayout:
    """Only PostgreSQL partitions the log; elsewhere Django's own create_model is right."""

    def create(editor) -> None:
        if editor.connection.vendor == "postgresql":
            _create_log_table(editor)
        else:
            from usage.models import UsageLog

            editor.create_model(UsageLog)

    return TableLayout(
        table=LOG_TABLE,
        findings=usage_log_partition_findings,
        create=create,
        repairs=_partition_repairs,
        repairable=frozenset({FUTURE_PARTITION_MISSING}),
    )


# --- The log against what is derived from it --------------------------------------------------------

LOG_DISAGREES = "aicost.W012"
LISTED_AT_MOST = 10  # Months (and models) named in the finding; `usage_verify` lists them all.
VERIFY_COMMAND = "python manage.py usage_verify"


def _amount(sums: Sums, currency: str, *, exact: bool = True) -> str:
    values = {"calls": calls_text(sums.calls), "cost": money(sums.cost), "currency": currency}
    if exact:
        return _("%(calls)s (%(cost)s %(currency)s)") % values
    return _("at least %(calls)s (%(cost)s %(currency)s)") % values


def month_model_description(entry: MonthModel, currency: str) -> str:
    """One disagreeing month and model in words, with its calls and cost."""
    missing = entry.missing
    if entry.lost:
        return _("%(month)s %(model)s: the log lacks %(amount)s that the rollups hold") % {
            "month": f"{entry.month:%Y-%m}",
            "model": entry.model_name,
            "amount": _amount(missing, currency),
        }
    extra = NO_SUMS - missing
    return _("%(month)s %(model)s: the log holds %(amount)s more than the rollups") % {
        "month": f"{entry.month:%Y-%m}",
        "model": entry.model_name,
        "amount": _amount(extra, currency, exact=entry.log_exact),
    }


def _listed(descriptions: list[str]) -> str:
    shown = "; ".join(descriptions[:LISTED_AT_MOST])
    more = len(descriptions) - LISTED_AT_MOST
    return shown + (f"; and {more} more" if more > 0 else "")


def _total(reading: ConsistencyReading, entries: list[MonthModel], sign: int) -> str:
    by_currency: dict[str, Sums] = {}
    for entry in entries:
        currency = reading.currency(entry.model_name)
        by_currency[currency] = by_currency.get(currency, NO_SUMS) + entry.missing
    calls = sign * sum(sums.calls for sums in by_currency.values())
    costs = ", ".join(f"{money(sign * sums.cost)} {currency}" for currency, sums in sorted(by_currency.items()))
    return f"{calls_text(calls)} ({costs})"


def _months_text(entries: list[MonthModel]) -> str:
    months = sorted({entry.month for entry in entries})
    shown = ", ".join(f"{month:%Y-%m}" for month in months[:LISTED_AT_MOST])
    return f"{len(months)} month(s) ({shown}{', …' if len(months) > LISTED_AT_MOST else ''})"


def _short(entry: MonthModel, reading: ConsistencyReading, sign: int) -> str:
    missing = entry.missing
    amount = _amount(Sums(sign * missing.calls, sign * missing.cost), reading.currency(entry.model_name))
    return f"{entry.month:%Y-%m} {entry.model_name} {'at least ' if not entry.log_exact else ''}{amount}"


def consistency_message(reading: ConsistencyReading) -> str:
    """What disagrees, with months, models and amounts: the finding's message."""
    parts = []
    if reading.lost:
        listed = _listed([_short(entry, reading, 1) for entry in reading.lost])
        parts.append(
            f"over {_months_text(reading.lost)} the log lacks {_total(reading, reading.lost, 1)} "
            f"that the rollups hold ({listed})"
        )
    if reading.extra:
        at_least = "at least " if not all(entry.log_exact for entry in reading.extra) else ""
        listed = _listed([_short(entry, reading, -1) for entry in reading.extra])
        parts.append(
            f"over {_months_text(reading.extra)} the log holds {at_least}{_total(reading, reading.extra, -1)} "
            f"more than the rollups, added outside the service? ({listed})"
        )
    if reading.counter_drift:
        drift = [
            f"{c.model_name}.{c.field} is {money(c.stored)}, the rollups hold {money(c.rollups)}"
            for c in reading.counter_drift
        ]
        parts.append(f"{len(drift)} counter(s) differ from the rollups ({_listed(drift)})")
    return "The usage log disagrees with what is derived from it (rollups, counters, retired months): " + "; ".join(
        parts
    )


RECONCILE_HINT = (
    f"Run `{VERIFY_COMMAND}` to compare every month and model, then `python manage.py usage_reconcile`: "
    "if rows were lost, `usage_reconcile --from-rollups --fix` keeps the rollups' totals and records the lost "
    "rows, `usage_reconcile --from-log --fix` makes the log the truth (rebuilds the rollups, lowers the counters); "
    "rows added outside the service are counted by `--from-log --fix`."
)
COUNTERS_HINT = (
    "The log agrees with its rollups; only counters drifted (e.g. a price added after the model's first calls). "
    "Run `python manage.py usage_reconcile --fix`: it sets them from the record and prints any that go down."
)


def usage_consistency_findings(connection) -> list[CheckMessage]:
    """aicost.W012: the quick reading (no count of the log; see usage.consistency)."""
    reading = usage_consistency_read(using=connection.alias, full=False)
    if reading.consistent:
        return []
    hint = RECONCILE_HINT if reading.disagreements else COUNTERS_HINT
    return [Warning(consistency_message(reading) + ".", hint=hint, obj=LOG_TABLE, id=LOG_DISAGREES)]


def usage_consistency_check() -> ConsistencyCheck:
    from usage import models

    read = (
        models.UsageCounter,
        models.UsageLogGap,
        models.UsageRetiredMonth,
        models.UsageRollupDaily,
        models.UsageRollupHour,
    )
    tables = [LOG_TABLE] + [model._meta.db_table for model in read]
    return ConsistencyCheck(name="usage log", tables=frozenset(tables), findings=usage_consistency_findings)
