"""Does the usage log agree with what is derived from it?

The rollups, the per-model counters on ai_model_pricing, the totals of the months retention dropped
(ai_usage_retired) and the rows recorded as lost (ai_usage_log_gap) all come from the log. They
agree when, for each UTC month and model, log + retired + recorded gaps = rollups (calls and cost),
and each priced model's counters equal its rollups' totals (calls and cost of all time, cost of the
current TIME_ZONE month).

Two readings, each from one snapshot (PostgreSQL: REPEATABLE READ, after a share lock on the log
so retention cannot drop a month in between):
- quick (the schema guard: startup, probes, scrapes) never counts the log. For each month it asks
  the log which models have rows (a skip scan of the model_name index: one index probe per model,
  the partition pruned) and compares that with the months and models the rollups expect rows of;
  the counters are compared with the rollups' totals (small tables). It sees a month of a model
  lost whole, rows of a month or model the rollups do not hold, and any drift of the counters.
- full (`usage_verify`, `usage_reconcile`) sums the log per month and model, and sees any difference.
SQLite (local use) always reads the full figures: a local log is small, and SQLite has no skip scan.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone
from django.utils.translation import ngettext

from core.money import ZERO, cost_from_float
from core.timeutils import month_bounds, month_start
from pricing.selectors import model_currencies, price_version_spans
from usage.models import UsageCounter, UsageLog, UsageLogGap, UsageRetiredMonth, UsageRollupDaily
from usage.partitions import LOG_TABLE, month_bounds_utc, partition_months
from usage.rollups import rollups_rebuild_first_month
from usage.window_sums import UsageFilters, usage_sums_by_model

COST_OUTPUT = UsageLog._meta.get_field("cost")
# The quick check counts a month's rows only where the rollups expect none, and at most this many.
ADDED_ROWS_COUNT_LIMIT = 1000
SNAPSHOT_LOCK_TIMEOUT = "2s"  # Waiting longer for retention's lock on the log is not worth a probe.


@dataclass(frozen=True)
class Sums:
    calls: int = 0
    cost: Decimal = ZERO

    def __add__(self, other: "Sums") -> "Sums":
        return Sums(self.calls + other.calls, self.cost + other.cost)

    def __sub__(self, other: "Sums") -> "Sums":
        return Sums(self.calls - other.calls, self.cost - other.cost)

    @property
    def is_zero(self) -> bool:
        return self.calls == 0 and self.cost == 0


NO_SUMS = Sums()


def money(value: Decimal | int) -> str:
    """A cost as plain digits at its stored precision (never 0E-8)."""
    return f"{value:f}" if isinstance(value, Decimal) else str(value)


def calls_text(calls: int) -> str:
    return ngettext("%(count)s call", "%(count)s calls", calls) % {"count": f"{calls:,}"}


@dataclass(frozen=True)
class MonthModel:
    """One UTC month of one model: what each side holds. `log` is None where the quick check saw
    rows and did not count them; `log_exact` is False where it counted only the first rows."""

    month: date
    model_name: str
    rollups: Sums = NO_SUMS
    retired: Sums = NO_SUMS
    gaps: Sums = NO_SUMS
    log: Sums | None = NO_SUMS
    log_exact: bool = True
    # How far the two sides' costs may differ and still agree: 0, but for SQLite, whose float sums
    # of the same costs in another order can differ in the last of their 15 significant digits.
    cost_tolerance: Decimal = ZERO

    @property
    def expected_log(self) -> Sums:
        """What the log should hold: the rollups less what retention dropped and what was lost."""
        return self.rollups - self.retired - self.gaps

    @property
    def missing(self) -> Sums | None:
        """What the log lacks (negative: what it holds beyond the rollups); None: not counted."""
        return None if self.log is None else self.expected_log - self.log

    @property
    def agrees(self) -> bool:
        missing = self.missing
        return missing is None or (missing.calls == 0 and abs(missing.cost) <= self.cost_tolerance)

    @property
    def lost(self) -> bool:
        """Rows lost: the rollups hold more calls than the log (or as many calls and more cost)."""
        missing = self.missing
        return missing is not None and (
            missing.calls > 0 or (missing.calls == 0 and missing.cost > self.cost_tolerance)
        )


@dataclass(frozen=True)
class CounterFigure:
    """One counter of one priced model, next to what the rollups and (full reading) the log say."""

    model_name: str
    field: str
    stored: int | Decimal
    rollups: int | Decimal
    log: int | Decimal | None = None  # What `--from-log` would set; None in the quick check.

    @property
    def agrees_with_rollups(self) -> bool:
        return self.stored == self.rollups


@dataclass
class ConsistencyReading:
    months: list[MonthModel]
    counters: list[CounterFigure]
    currencies: dict[str, str]
    full: bool
    checked_counters: bool = True
    month_filter: date | None = None
    this_month: date | None = None
    disagreements: list[MonthModel] = field(init=False)

    def __post_init__(self) -> None:
        self.disagreements = [m for m in self.months if not m.agrees]

    @property
    def lost(self) -> list[MonthModel]:
        return [m for m in self.disagreements if m.lost]

    @property
    def extra(self) -> list[MonthModel]:
        return [m for m in self.disagreements if not m.lost]

    @property
    def counter_drift(self) -> list[CounterFigure]:
        return [c for c in self.counters if not c.agrees_with_rollups]

    @property
    def consistent(self) -> bool:
        return not self.disagreements and not self.counter_drift

    def currency(self, model_name: str) -> str:
        return self.currencies.get(model_name, settings.AICOST_CURRENCY)


@contextmanager
def usage_snapshot(
    *,
    using: str = "default",
    lock_mode: str = "ACCESS SHARE",
    lock_timeout: str | None = SNAPSHOT_LOCK_TIMEOUT,
    repeatable: bool = True,
) -> Iterator[None]:
    """A transaction whose reads all see one moment. PostgreSQL: the log is locked first (before
    the snapshot is taken), so a month cannot be detached between reading its retired totals and
    probing its rows; then REPEATABLE READ where this is the outermost transaction. Lock mode
    SHARE holds ingestion back meanwhile (reconcile --fix: nothing changes under it, so READ
    COMMITTED, `repeatable=False`, is as good), EXCLUSIVE holds reads back too (a rebuild)."""
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                if outermost and repeatable:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                if lock_timeout is not None:
                    cursor.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
                cursor.execute(f"LOCK TABLE {LOG_TABLE} IN {lock_mode} MODE")
                if lock_timeout is not None:
                    cursor.execute("SET LOCAL lock_timeout = DEFAULT")
        yield


def _as_month(value) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, str):  # SQLite returns text for some truncations.
        return date.fromisoformat(value[:10])
    return value


def _cost(value) -> Decimal:
    # PostgreSQL sums numeric exactly; SQLite as float, read as Django reads its decimals.
    if value is None:
        return ZERO
    return value if isinstance(value, Decimal) else cost_from_float(value)


def _sums(calls, cost) -> Sums:
    return Sums(int(calls or 0), _cost(cost))


def _in_month(queryset, field_name: str, month: date | None, *, is_date: bool):
    if month is None:
        return queryset
    start, end = month_bounds_utc(month)
    if is_date:
        return queryset.filter(**{f"{field_name}__gte": start.date(), f"{field_name}__lt": end.date()})
    return queryset.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end})


def _rollup_sums(using: str, month: date | None) -> dict[tuple[date, str], Sums]:
    """Daily rollups (compacted and delta rows) per (UTC month, model)."""
    sums: dict[tuple[date, str], Sums] = {}
    daily = _in_month(UsageRollupDaily.objects.using(using), "day", month, is_date=True)
    for row in (
        daily.order_by().annotate(m=TruncMonth("day")).values("m", "model_name").annotate(n=Sum("calls"), c=Sum("cost"))
    ):
        key = (_as_month(row["m"]), row["model_name"])
        sums[key] = sums.get(key, NO_SUMS) + _sums(row["n"], row["c"])
    return sums


def _recorded_sums(model, using: str, month: date | None) -> dict[tuple[date, str], Sums]:
    """Retired months or recorded gaps per (UTC month, model)."""
    queryset = model.objects.using(using).order_by()
    if month is not None:
        queryset = queryset.filter(month=month)
    return {
        (row["month"], row["model_name"]): _sums(row["calls"], row["cost"])
        for row in queryset.values("month", "model_name", "calls", "cost")
    }


def _log_sums(using: str, month: date | None) -> dict[tuple[date, str], Sums]:
    """The whole log (or one month of it) summed per (UTC month, model): a scan."""
    log = _in_month(UsageLog.objects.using(using), "timestamp", month, is_date=False)
    rows = (
        log.order_by()
        .annotate(m=TruncMonth("timestamp", tzinfo=UTC))
        .values("m", "model_name")
        .annotate(n=Count("id"), c=Coalesce(Sum("cost"), ZERO, output_field=COST_OUTPUT))
    )
    return {(_as_month(row["m"]), row["model_name"]): _sums(row["n"], row["c"]) for row in rows}


def _models_present_sql(months: list[date], adapt) -> tuple[str, list]:
    """One statement: for each month, the distinct models of the log's rows in it, found by a skip
    scan (the smallest model_name after the previous one, an index probe each)."""
    where = '"timestamp" >= %s AND "timestamp" < %s'
    ctes, selects, params = [], [], []
    for n, month in enumerate(months):
        start, end = (adapt(moment) for moment in month_bounds_utc(month))
        ctes.append(
            f"m{n}(name) AS (SELECT min(model_name) FROM {LOG_TABLE} WHERE {where} "  # noqa: S608 (constants)
            f"UNION ALL SELECT (SELECT min(model_name) FROM {LOG_TABLE} WHERE {where} AND model_name > m{n}.name) "
            f"FROM m{n} WHERE m{n}.name IS NOT NULL)"
        )
        params += [start, end, start, end]
        selects.append(f"SELECT {n}, name FROM m{n} WHERE name IS NOT NULL")  # noqa: S608 (numbers only)
    return "WITH RECURSIVE " + ", ".join(ctes) + " " + " UNION ALL ".join(selects), params


def _models_present(connection, months: list[date]) -> dict[date, set[str]]:
    present: dict[date, set[str]] = {month: set() for month in months}
    if not months:
        return present
    sql, params = _models_present_sql(months, connection.ops.adapt_datetimefield_value)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for index, name in cursor.fetchall():
            present[months[index]].add(name)
    return present


def _first_rows_sums(connection, month: date, model_name: str) -> tuple[Sums, bool]:
    """Calls and cost of at most ADDED_ROWS_COUNT_LIMIT rows of a month and model; exact when fewer."""
    start, end = month_bounds_utc(month)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), coalesce(sum(cost), 0) FROM (SELECT cost FROM {LOG_TABLE} "  # noqa: S608
            'WHERE "timestamp" >= %s AND "timestamp" < %s AND model_name = %s LIMIT %s) AS first_rows',
            [start, end, model_name, ADDED_ROWS_COUNT_LIMIT],
        )
        calls, cost = cursor.fetchone()
    return _sums(calls, cost), calls < ADDED_ROWS_COUNT_LIMIT


def _candidate_months(connection, rollup_months: set[date], month: date | None) -> list[date]:
    """Months the log may hold rows in: those of the rollups and every partition's."""
    months = set(rollup_months) | set(partition_months(connection))
    if month is not None:
        months &= {month}
    return sorted(months)


def _quick_log_sides(connection, base: dict[tuple[date, str], MonthModel], month: date | None) -> None:
    """Fill in `log` of each month and model from index probes, without counting the log."""
    months = _candidate_months(connection, {m for m, _name in base}, month)
    for probe_month, names in _models_present(connection, months).items():
        for name in names:
            base.setdefault((probe_month, name), MonthModel(probe_month, name))
        for key in [k for k in base if k[0] == probe_month]:
            entry = base[key]
            if key[1] not in names:
                base[key] = replace(entry, log=NO_SUMS)
            elif entry.expected_log.calls > 0:
                base[key] = replace(entry, log=None)  # Rows where rows are expected: not counted.
            else:
                counted, exact = _first_rows_sums(connection, probe_month, key[1])
                base[key] = replace(entry, log=counted, log_exact=exact)


# Float sums of n costs err by about n units in the last of 15 places: 10^-12 of the larger side is
# above that noise. A lost or extra call still shows, in the count of calls.
_FLOAT_SUM_RELATIVE_ERROR = Decimal("1e-12")


def _float_sum_tolerance(*costs: Decimal) -> Decimal:
    return max(abs(cost) for cost in costs) * _FLOAT_SUM_RELATIVE_ERROR


def _month_models(using: str, *, full: bool, month: date | None) -> list[MonthModel]:
    rollups = _rollup_sums(using, month)
    retired = _recorded_sums(UsageRetiredMonth, using, month)
    gaps = _recorded_sums(UsageLogGap, using, month)
    base = {
        key: MonthModel(
            key[0],
            key[1],
            rollups=rollups.get(key, NO_SUMS),
            retired=retired.get(key, NO_SUMS),
            gaps=gaps.get(key, NO_SUMS),
        )
        for key in rollups.keys() | retired.keys() | gaps.keys()
    }
    connection = connections[using]
    if full or connection.vendor != "postgresql":
        log = _log_sums(using, month)
        floats = connection.vendor != "postgresql"
        for key in base.keys() | log.keys():
            entry = base.get(key, MonthModel(key[0], key[1]))
            logged = log.get(key, NO_SUMS)
            tolerance = _float_sum_tolerance(entry.rollups.cost, logged.cost) if floats else ZERO
            base[key] = replace(entry, log=logged, cost_tolerance=tolerance)
    else:
        _quick_log_sides(connection, base, month)
    return [base[key] for key in sorted(base)]


def _month_cost_from_log(using: str, now: datetime) -> dict[str, Decimal]:
    month_from, month_to = month_bounds(now)
    rows = (
        UsageLog.objects.using(using)
        .filter(timestamp__gte=month_from, timestamp__lt=month_to)
        .order_by()
        .values("model_name")
        .annotate(c=Coalesce(Sum("cost"), ZERO, output_field=COST_OUTPUT))
    )
    return {row["model_name"]: _cost(row["c"]) for row in rows}


def _counter_figures(using: str, months: list[MonthModel], *, full: bool, now: datetime) -> list[CounterFigure]:
    """Each model's counters next to its rollups' totals and (full) what the log holds: every model
    with counters or rollups (a missing counter row counts as zeros)."""
    this_month = month_start(now)
    month_from, month_to = month_bounds(now)
    rolled: dict[str, Sums] = {}
    for entry in months:
        rolled[entry.model_name] = rolled.get(entry.model_name, NO_SUMS) + entry.rollups
    window = usage_sums_by_model(start=month_from, end=month_to, filters=UsageFilters(), using=using)
    from_log: dict[str, Sums] = {}
    log_month: dict[str, Decimal] = {}
    if full:
        kept_before = rollups_rebuild_first_month(using=using)
        for entry in months:
            kept_gaps = entry.gaps if kept_before is not None and entry.month < kept_before else NO_SUMS
            from_log[entry.model_name] = from_log.get(entry.model_name, NO_SUMS) + entry.log + entry.retired + kept_gaps
        log_month = _month_cost_from_log(using, now)
    counters = {counter.model_name: counter for counter in UsageCounter.objects.using(using)}
    figures = []
    for name in sorted(counters.keys() | rolled.keys()):
        counter = counters.get(name) or UsageCounter(model_name=name)
        roll = rolled.get(name, NO_SUMS)
        roll_month = _cost(window[name].cost) if name in window else ZERO
        log = from_log.get(name, NO_SUMS)
        figures += [
            CounterFigure(name, "total_calls", counter.total_calls, roll.calls, log.calls if full else None),
            CounterFigure(name, "total_cost", counter.total_cost, roll.cost, log.cost if full else None),
            CounterFigure(
                name,
                "current_month_cost",
                counter.month_cost(this_month),
                roll_month,
                log_month.get(name, ZERO) if full else None,
            ),
        ]
    return figures


def _currencies(using: str) -> dict[str, str]:
    return model_currencies(using=using)


def usage_consistency_read(
    *, using: str = "default", full: bool, month: date | None = None, now: datetime | None = None
) -> ConsistencyReading:
    """Every side per UTC month and model, and the counters (not with `month`: they are all time).
    Call inside usage_snapshot() to have one moment; it opens one itself otherwise."""
    now = now or timezone.now()
    with usage_snapshot(using=using):
        months = _month_models(using, full=full, month=month)
        counters = [] if month is not None else _counter_figures(using, months, full=full, now=now)
        currencies = _currencies(using)
    return ConsistencyReading(
        months=months,
        counters=counters,
        currencies=currencies,
        full=full,
        checked_counters=month is None,
        month_filter=month,
        this_month=month_start(now),
    )


@dataclass(frozen=True)
class VersionSpanBreach:
    """Stored rows of one model that point at a price version whose span excludes their moment."""

    price_version_id: int
    model_name: str
    calls: int
    first: datetime
    last: datetime
    effective_from: datetime
    effective_to: datetime | None


def usage_rows_outside_version_span(*, using: str = "default", month: date | None = None) -> list[VersionSpanBreach]:
    """Rows whose price version's span [effective_from, effective_to) does not contain their timestamp
    (a back-dated version would cause it: pricing refuses those unless repricing allows them). One scan
    of the log (or a month) for each version's first and last moment; the rows of a version found
    outside are then counted (usage_verify)."""
    log = _in_month(UsageLog.objects.using(using), "timestamp", month, is_date=False).filter(
        price_version__isnull=False
    )
    ranges = list(log.order_by().values("price_version_id").annotate(first=Min("timestamp"), last=Max("timestamp")))
    spans = price_version_spans(version_ids=[row["price_version_id"] for row in ranges], using=using)
    breaches = []
    for row in sorted(ranges, key=lambda r: r["price_version_id"]):
        version_id = row["price_version_id"]
        start, end = spans[version_id]
        if row["first"] >= start and (end is None or row["last"] < end):
            continue
        outside = Q(timestamp__lt=start) | (Q() if end is None else Q(timestamp__gte=end))
        for found in (
            log.filter(outside, price_version_id=version_id)
            .order_by()
            .values("model_name")
            .annotate(n=Count("id"), first=Min("timestamp"), last=Max("timestamp"))
            .order_by("model_name")
        ):
            breaches.append(
                VersionSpanBreach(
                    version_id, found["model_name"], found["n"], found["first"], found["last"], start, end
                )
            )
    return breaches
