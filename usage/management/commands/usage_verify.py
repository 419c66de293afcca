import re
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from usage.consistency import (
    ConsistencyReading,
    MonthModel,
    calls_text,
    money,
    usage_consistency_read,
    usage_rows_outside_version_span,
)

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
COLUMNS = (
    ("month", 7),
    ("model", 24),
    ("log calls", 11),
    ("rollups", 11),
    ("retired", 9),
    ("lost (rec.)", 11),
    ("difference", 11),
    ("log cost", 18),
    ("rollups cost", 18),
    ("difference cost", 18),
    ("currency", 8),
)


def _month(value: str) -> date:
    match = MONTH.match(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise CommandError(f"--month must be YYYY-MM (a UTC month, e.g. 2026-11), not {value!r}.")
    return date(int(match[1]), int(match[2]), 1)


class Command(BaseCommand):
    help = (
        "Verify the usage log against everything derived from it, per UTC month and model: the log's calls and "
        "cost against the rollups, the months retention dropped and the rows recorded as "
        "lost (log + retired + lost = rollups), and each model's counters against the rollups' totals and the "
        "log. Sums the whole log (or one month of it) in one snapshot. Exits 0 when everything agrees, 1 with a "
        "table of the differences otherwise. Read only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="Only this UTC month (YYYY-MM); the counters are then not checked.")
        parser.add_argument(
            "--all", dest="show_all", action="store_true", help="List every month and model, not only differences."
        )

    def handle(self, *args, month: str | None, show_all: bool, **options):
        only = None if month is None else _month(month)
        reading = usage_consistency_read(full=True, month=only)
        rows = reading.months if show_all else reading.disagreements
        if rows:
            self._table(reading, rows)
        self._counters(reading)
        breaches = usage_rows_outside_version_span(month=only)
        for breach in breaches:
            until = "in force" if breach.effective_to is None else f"to {breach.effective_to.isoformat()}"
            self.stderr.write(
                f"{breach.model_name}: {calls_text(breach.calls)} from {breach.first.isoformat()} to "
                f"{breach.last.isoformat()} point at price version {breach.price_version_id}, in force from "
                f"{breach.effective_from.isoformat()} {until}, whose span excludes them."
            )
        self._summary(reading, only)
        if not reading.consistent or breaches:
            raise SystemExit(1)

    def _table(self, reading: ConsistencyReading, rows: list[MonthModel]) -> None:
        self.stdout.write(
            "  ".join(f"{name:>{width}}" if n > 1 else f"{name:<{width}}" for n, (name, width) in enumerate(COLUMNS))
        )
        for entry in rows:
            self.stdout.write(self._row(entry, reading.currency(entry.model_name)))

    @staticmethod
    def _row(entry: MonthModel, currency: str) -> str:
        values = (
            f"{entry.month:%Y-%m}",
            entry.model_name,
            f"{entry.log.calls:,}",
            f"{entry.rollups.calls:,}",
            f"{entry.retired.calls:,}",
            f"{entry.gaps.calls:,}",
            f"{-entry.missing.calls:+,}" if entry.missing.calls else "0",
            money(entry.log.cost),
            money(entry.rollups.cost),
            f"{-entry.missing.cost:+f}" if entry.missing.cost else "0",
            currency,
        )
        return "  ".join(
            f"{value:>{width}}" if n > 1 else f"{value:<{width}}"
            for n, (value, (_name, width)) in enumerate(zip(values, COLUMNS, strict=True))
        )

    def _counters(self, reading: ConsistencyReading) -> None:
        shown = [c for c in reading.counters if c.stored != c.rollups or (c.log != c.rollups and reading.disagreements)]
        for counter in shown:
            verdict = "differs from the rollups" if counter.stored != counter.rollups else "equals the rollups"
            self.stdout.write(
                f"counter {counter.model_name}.{counter.field} {money(counter.stored)} {verdict} "
                f"({money(counter.rollups)}); from the log: {money(counter.log)}"
            )

    def _summary(self, reading: ConsistencyReading, only: date | None) -> None:
        scope = f"{only:%Y-%m}" if only else f"{len({e.month for e in reading.months})} month(s)"
        calls = sum(entry.rollups.calls for entry in reading.months)
        if reading.consistent:
            counters = "" if only else f", and {len(reading.counters)} counters"
            agree = f"The log, rollups, retired months and recorded gaps agree over {scope} ({calls:,} calls)"
            self.stdout.write(self.style.SUCCESS(f"{agree}{counters}."))
            return
        if not reading.checked_counters:
            self.stdout.write("Counters not checked (they are all time; run without --month).")
        pairs, counters = len(reading.disagreements), len(reading.counter_drift)
        self.stderr.write(
            f"{pairs} month/model pair(s) and {counters} counter(s) differ from the rollups over {scope}; "
            "`python manage.py usage_reconcile` says what --fix would do. The difference column is "
            "log - (rollups - retired - lost): negative where rows were lost, positive where rows were added."
        )
