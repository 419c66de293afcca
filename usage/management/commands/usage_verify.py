import re
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

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
    (gettext_lazy("month"), 7),
    (gettext_lazy("model"), 24),
    (gettext_lazy("log calls"), 11),
    (gettext_lazy("rollups"), 11),
    (gettext_lazy("retired"), 9),
    (gettext_lazy("lost (rec.)"), 11),
    (gettext_lazy("difference"), 11),
    (gettext_lazy("log cost"), 18),
    (gettext_lazy("rollups cost"), 18),
    (gettext_lazy("difference cost"), 18),
    (gettext_lazy("currency"), 8),
)


def _month(value: str) -> date:
    match = MONTH.match(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise CommandError(
            _("--month must be YYYY-MM (a UTC month, e.g. 2026-11), not %(value)s.") % {"value": repr(value)}
        )
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
            if breach.effective_to is None:
                until = _("in force")
            else:
                until = _("to %(end)s") % {"end": breach.effective_to.isoformat()}
            self.stderr.write(
                _(
                    "%(model)s: %(calls)s from %(first)s to %(last)s point at price version %(version)s, "
                    "in force from %(start)s %(until)s, whose span excludes them."
                )
                % {
                    "model": breach.model_name,
                    "calls": calls_text(breach.calls),
                    "first": breach.first.isoformat(),
                    "last": breach.last.isoformat(),
                    "version": breach.price_version_id,
                    "start": breach.effective_from.isoformat(),
                    "until": until,
                }
            )
        self._summary(reading, only)
        if not reading.consistent or breaches:
            raise SystemExit(1)

    def _table(self, reading: ConsistencyReading, rows: list[MonthModel]) -> None:
        self.stdout.write(
            "  ".join(
                f"{name!s:>{width}}" if n > 1 else f"{name!s:<{width}}" for n, (name, width) in enumerate(COLUMNS)
            )
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
            values = {
                "model": counter.model_name,
                "field": counter.field,
                "stored": money(counter.stored),
                "rollups": money(counter.rollups),
                "log": money(counter.log),
            }
            if counter.stored != counter.rollups:
                line = _(
                    "counter %(model)s.%(field)s %(stored)s differs from the rollups (%(rollups)s); "
                    "from the log: %(log)s"
                )
            else:
                line = _(
                    "counter %(model)s.%(field)s %(stored)s equals the rollups (%(rollups)s); from the log: %(log)s"
                )
            self.stdout.write(line % values)

    def _summary(self, reading: ConsistencyReading, only: date | None) -> None:
        months = len({e.month for e in reading.months})
        scope = f"{only:%Y-%m}" if only else _("%(months)s month(s)") % {"months": months}
        calls = sum(entry.rollups.calls for entry in reading.months)
        if reading.consistent:
            values = {"scope": scope, "calls": f"{calls:,}", "counters": len(reading.counters)}
            if only:
                agree = _("The log, rollups, retired months and recorded gaps agree over %(scope)s (%(calls)s calls).")
            else:
                agree = _(
                    "The log, rollups, retired months and recorded gaps agree over %(scope)s (%(calls)s calls), "
                    "and %(counters)s counters."
                )
            self.stdout.write(self.style.SUCCESS(agree % values))
            return
        if not reading.checked_counters:
            self.stdout.write(_("Counters not checked (they are all time; run without --month)."))
        pairs, counters = len(reading.disagreements), len(reading.counter_drift)
        self.stderr.write(
            _(
                "%(pairs)s month/model pair(s) and %(counters)s counter(s) differ from the rollups over %(scope)s; "
                "`python manage.py usage_reconcile` says what --fix would do. The difference column is "
                "log - (rollups - retired - lost): negative where rows were lost, positive where rows were added."
            )
            % {"pairs": pairs, "counters": counters, "scope": scope}
        )
