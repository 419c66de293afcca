"""The usage log's partitions, as the schema guard sees them (PostgreSQL).

Registered with the guard in UsageConfig.ready(), so the deploy check, startup, the health
endpoints and `schema_repair` all know the log is partitioned by month."""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils import timezone

from aicost.schema_guard import REPAIR_COMMAND, TableLayout
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


def _partition_repairs(connection) -> list:
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
