"""The sums a usage rollup row holds, each declared once in ROLLUP_SUMS.

A RollupSum names a sum, says how it is taken from log rows (its LogSource) and what it is (its
SumType: column, zero, SQL type). Everything else is derived from ROLLUP_SUMS, in its order:
  - the rollup models' columns (usage.models.RollupSums, the hour rows' prefix columns);
  - the SQL that sums the log (rebuild) and compacts delta rows, the batches' appends (binary COPY)
    and SQLite's upserts (usage.rollups, usage.dialects);
  - the per-batch sums in Python (usage.rollups.quarter_sums) and RollupDelta, the sums as one value;
  - the readers (usage.window_sums), which key every sum by its name.

Adding a metric, e.g. cache_write_tokens summed from a log column of that name, is one entry here,
`RollupSum("cache_write_tokens", COUNT, Total("cache_write_tokens"))`, plus the migration that
`manage.py makemigrations usage` writes for it: the sum's column on each of the 4 rollup tables (4
on the hour tables, with their 15/30/45-minute prefixes).
The log column itself, if new, is a change to UsageLog (and usage.partitions' DDL), not to the
rollups. What the APIs show of a sum is chosen where responses are shaped (usage.reports).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, make_dataclass
from decimal import Decimal
from functools import cache
from itertools import repeat
from operator import attrgetter, eq, is_not, itemgetter
from typing import Any

from django.db import models
from django.db.models import Aggregate, Count, Q, Sum

from core.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS, cost_from_float


def _exact_cost(value) -> Decimal:
    # PostgreSQL sums numeric exactly; SQLite sums as float, read as Django reads its decimals.
    return value if isinstance(value, Decimal) else cost_from_float(value)


@dataclass(frozen=True)
class SumType:
    """What a sum is: its Python type and zero, its rollup column, its PostgreSQL type (binary COPY,
    casts) and how a summed value read from the database becomes exact again."""

    python: type
    zero: Any
    sql_type: str
    field: Callable[[], models.Field]
    from_db: Callable[[Any], Any]

    def sum_sql(self, expression: str) -> str:
        # PostgreSQL sums bigint as numeric, which the driver would turn into Decimals.
        return f"CAST(sum({expression}) AS BIGINT)" if self.python is int else f"sum({expression})"


COUNT = SumType(int, 0, "bigint", lambda: models.BigIntegerField(default=0), int)
MONEY = SumType(
    Decimal,
    Decimal(0),
    "numeric",
    lambda: models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, default=0),
    _exact_cost,
)
SECONDS = SumType(float, 0.0, "float8", lambda: models.FloatField(default=0), float)


def _sql_literal(value: bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + value.replace("'", "''") + "'"


class LogSource:
    """How a sum is taken from log rows, said three ways from one definition: SQL over a group of
    ai_model_usage_log rows, a Django aggregate over UsageLog rows, and each call's share of it in
    Python (an iterable over the calls, one value per call, summed per rollup row)."""

    def sql(self) -> str:
        raise NotImplementedError

    def aggregate(self) -> Aggregate:
        raise NotImplementedError

    def shares(self, calls: Sequence) -> Iterable:
        raise NotImplementedError


@dataclass(frozen=True)
class Rows(LogSource):
    """The number of log rows, or of those whose `column` equals `value`."""

    column: str | None = None
    value: bool | str | None = None

    def sql(self) -> str:
        if self.column is None:
            return "count(*)"
        condition = self.column if self.value is True else f"{self.column} = {_sql_literal(self.value)}"
        return f"count(*) FILTER (WHERE {condition})"

    def aggregate(self) -> Aggregate:
        return Count("pk", filter=None if self.column is None else Q(**{self.column: self.value}))

    def shares(self, calls: Sequence) -> Iterable:
        if self.column is None:
            return repeat(1, len(calls))
        return map(eq, map(attrgetter(self.column), calls), repeat(self.value))


@dataclass(frozen=True)
class Present(LogSource):
    """The number of log rows whose `column` is not null."""

    column: str

    def sql(self) -> str:
        return f"count({self.column})"

    def aggregate(self) -> Aggregate:
        return Count(self.column)

    def shares(self, calls: Sequence) -> Iterable:
        return map(is_not, map(attrgetter(self.column), calls), repeat(None))


@dataclass(frozen=True)
class Total(LogSource):
    """The sum of `column` over log rows; `nullable`: a null adds nothing."""

    column: str
    nullable: bool = False

    def sql(self) -> str:
        return f"coalesce(sum({self.column}), 0)"

    def aggregate(self) -> Aggregate:
        return Sum(self.column)

    def shares(self, calls: Sequence) -> Iterable:
        values = map(attrgetter(self.column), calls)
        return [0 if value is None else value for value in values] if self.nullable else values


@dataclass(frozen=True)
class RollupSum:
    """One sum of a rollup row: its column name (also its name in RollupDelta and in the readers),
    what it is, and how the log makes it."""

    name: str
    type: SumType
    source: LogSource


ROLLUP_SUMS: tuple[RollupSum, ...] = (
    RollupSum("calls", COUNT, Rows()),
    RollupSum("successful_calls", COUNT, Rows("success", True)),
    RollupSum("unpriced_calls", COUNT, Rows("cost_source", "unpriced")),  # CostSource.UNPRICED
    RollupSum("prompt_tokens", COUNT, Total("prompt_tokens")),
    RollupSum("completion_tokens", COUNT, Total("completion_tokens")),
    RollupSum("cached_tokens", COUNT, Total("cached_tokens")),
    RollupSum("reasoning_tokens", COUNT, Total("reasoning_tokens")),
    RollupSum("cache_write_5m_tokens", COUNT, Total("cache_write_5m_tokens")),
    RollupSum("cache_write_1h_tokens", COUNT, Total("cache_write_1h_tokens")),
    RollupSum("input_audio_tokens", COUNT, Total("input_audio_tokens")),
    RollupSum("output_audio_tokens", COUNT, Total("output_audio_tokens")),
    RollupSum("output_image_tokens", COUNT, Total("output_image_tokens")),
    RollupSum("cost", MONEY, Total("cost", nullable=True)),
    # Each call's cost in the reporting currency (AICOST_REPORTING_CURRENCY): the only money summed
    # across models. Calls priced but with no rate in force are counted as unconverted_calls.
    RollupSum("reporting_cost", MONEY, Total("reporting_cost", nullable=True)),
    RollupSum("unconverted_calls", COUNT, Rows("unconverted", True)),
    RollupSum("response_time_sum", SECONDS, Total("response_time", nullable=True)),
    RollupSum("response_time_count", COUNT, Present("response_time")),
)

SUM_NAMES: tuple[str, ...] = tuple(rollup_sum.name for rollup_sum in ROLLUP_SUMS)


def _delta_add(self, other):
    return type(self)(*(getattr(self, name) + getattr(other, name) for name in SUM_NAMES))


def _delta_from_db(cls, values: Iterable):
    """A RollupDelta of summed values read from the database in ROLLUP_SUMS order (None: zero)."""
    return _read_all(values)


def _typed_reader(sums: tuple["RollupSum", ...]) -> Callable[[Iterable], tuple]:
    python_types = tuple(s.type.python for s in sums)

    def typed(values: Iterable) -> tuple:
        values = tuple(values)
        if all(map(isinstance, values, python_types)):  # Exact and typed already (PostgreSQL): nothing to convert.
            return values
        return tuple(
            s.type.zero if value is None else s.type.from_db(value) for s, value in zip(sums, values, strict=True)
        )

    return typed


@cache
def typed_values_reader(sums: tuple["RollupSum", ...]) -> Callable[[Iterable], tuple]:
    """reader(values): the values of `sums` read from the database (in their order), exact and typed
    (None: zero), as a tuple: for summing many rows column by column before making a RollupDelta."""
    return _typed_reader(sums)


@cache
def delta_reader(sums: tuple["RollupSum", ...]) -> Callable[[Iterable], "RollupDelta"]:
    """reader(values): the RollupDelta of the values of `sums` read from the database (in their
    order; None: zero); the declared sums not read are None, so using one fails rather than reading
    a silent zero. Made once per set of sums: take it before a loop over rows."""
    typed = _typed_reader(sums)
    if tuple(s.name for s in sums) == SUM_NAMES:
        return lambda values: RollupDelta(*typed(values))
    position = {s.name: n for n, s in enumerate(sums)}
    spread = itemgetter(*(position.get(name, len(sums)) for name in SUM_NAMES))  # len(sums): the None after them.
    return lambda values: RollupDelta(*spread((*typed(values), None)))


# The sums as one value: RollupDelta(calls=..., cost=...), each field typed and zero by default.
RollupDelta = make_dataclass(
    "RollupDelta",
    [(s.name, s.type.python, field(default=s.type.zero)) for s in ROLLUP_SUMS],
    namespace={
        "__doc__": "The sums a rollup row holds, by name (ROLLUP_SUMS); stats add these up.",
        "__add__": _delta_add,
        "from_db": classmethod(_delta_from_db),
    },
)
RollupDelta.__module__ = __name__
_read_all = delta_reader(ROLLUP_SUMS)
