from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from usage.checks import month_model_description
from usage.consistency import calls_text, money
from usage.services import FROM_LOG, FROM_ROLLUPS, CounterDifference, ReconcileOutcome, usage_reconcile


class Command(BaseCommand):
    help = (
        "Compare the usage log with what is derived from it (rollups, retired months, recorded gaps) per UTC "
        "month and model, and each model's counters (total_calls, total_cost, current_month_cost) with them. "
        "Names every period where the log lost rows or holds rows the rollups lack. --fix alone corrects the "
        "counters only where the log and the rollups agree; where they disagree, say which side is the truth: "
        "--from-rollups --fix (keep the rollups' totals, record the lost rows) or --from-log --fix (rebuild the "
        "rollups and counters from the log). A source without --fix shows what it would change. Every counter "
        "that goes down is printed. Exits 1 while anything differs and nothing was fixed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Make the counters (and the side named) agree.")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--from-rollups",
            dest="source",
            action="store_const",
            const=FROM_ROLLUPS,
            help="The rollups are the truth: record the log's lost rows, counters from the rollups.",
        )
        source.add_argument(
            "--from-log",
            dest="source",
            action="store_const",
            const=FROM_LOG,
            help="The log is the truth: rebuild the rollups from it, counters from the log (+ retired months).",
        )

    def handle(self, *args, fix: bool, source: str | None, **options):
        outcome = usage_reconcile(source=source, fix=fix)
        self._periods(outcome)
        self._counters(outcome)
        if outcome.refused:
            raise CommandError(
                _(
                    "Refusing --fix: the log and the rollups disagree (above), so the counters cannot be set from "
                    "both. Say which side is the truth: --from-rollups --fix (rows were lost: keep the rollups' "
                    "totals and record the lost rows) or --from-log --fix (the log is right: rebuild the rollups, "
                    "lower the counters). Nothing was changed."
                )
            )
        if fix:
            self._fixed(outcome)
            return
        self._would(outcome)
        if not outcome.reading.disagreements and not outcome.differences:
            self.stdout.write(self.style.SUCCESS(_("Counters equal the log, and the log agrees with its rollups.")))
            return
        if source is None:
            advice = (
                _("choose --from-rollups --fix or --from-log --fix")
                if outcome.reading.disagreements
                else _("run with --fix to correct them")
            )
        else:
            advice = _("run with --from-%(source)s --fix to apply this") % {"source": source}
        periods, counters = len(outcome.reading.disagreements), len(outcome.differences)
        self.stderr.write(
            _("%(periods)s period(s) and %(counters)s counter(s) differ; %(advice)s.")
            % {"periods": periods, "counters": counters, "advice": advice}
        )
        raise SystemExit(1)

    def _periods(self, outcome: ReconcileOutcome) -> None:
        reading = outcome.reading
        if reading.lost:
            self.stdout.write(_("Rows lost: the log holds fewer calls than the rollups for"))
            for entry in reading.lost:
                self.stdout.write(f"  {month_model_description(entry, reading.currency(entry.model_name))}")
        if reading.extra:
            self.stdout.write(_("Rows the rollups do not hold (added to the log outside the service?):"))
            for entry in reading.extra:
                self.stdout.write(f"  {month_model_description(entry, reading.currency(entry.model_name))}")

    def _counters(self, outcome: ReconcileOutcome) -> None:
        would = not outcome.fix
        for difference in outcome.differences:
            line = _("%(model)s.%(field)s: counter %(stored)s, log %(log)s, rollups %(rollups)s") % {
                "model": difference.model_name,
                "field": difference.field,
                "stored": money(difference.stored),
                "log": money(difference.from_log),
                "rollups": money(difference.from_rollups),
            }
            if difference.target is not None and not outcome.refused:
                line += (_(" -> would set %(target)s") if would else _(" -> set %(target)s")) % {
                    "target": money(difference.target)
                }
            self.stdout.write(line)
        for difference in outcome.differences if not outcome.refused else []:
            if difference.lowered:
                self.stdout.write(self.style.WARNING(self._lowered_line(difference, would)))

    @staticmethod
    def _lowered_line(difference: CounterDifference, would: bool) -> str:
        values = {
            "model": difference.model_name,
            "field": difference.field,
            "stored": money(difference.stored),
            "target": money(difference.target),
        }
        if would:
            line = _("LOWERED (would be): %(model)s.%(field)s %(stored)s -> %(target)s") % values
        else:
            line = _("LOWERED: %(model)s.%(field)s %(stored)s -> %(target)s") % values
        if difference.field == "current_month_cost":
            line += _("; this month's budget use (the model's and the global budget's) falls with it")
        return line

    def _would(self, outcome: ReconcileOutcome) -> None:
        if outcome.source == FROM_ROLLUPS:
            for entry in outcome.reading.lost:
                missing = entry.gaps + entry.missing
                self.stdout.write(
                    _("would record lost rows: %(month)s %(model)s %(calls)s, %(cost)s %(currency)s")
                    % {
                        "month": f"{entry.month:%Y-%m}",
                        "model": entry.model_name,
                        "calls": calls_text(missing.calls),
                        "cost": money(missing.cost),
                        "currency": outcome.reading.currency(entry.model_name),
                    }
                )
        elif outcome.source == FROM_LOG:
            self.stdout.write(_("would rebuild the rollups from the log (months retention dropped keep theirs)"))

    def _fixed(self, outcome: ReconcileOutcome) -> None:
        for gap in outcome.gaps_recorded:
            self.stdout.write(
                _("recorded lost rows: %(month)s %(model)s %(calls)s, %(cost)s %(currency)s")
                % {
                    "month": f"{gap.month:%Y-%m}",
                    "model": gap.model_name,
                    "calls": calls_text(gap.calls),
                    "cost": money(gap.cost),
                    "currency": outcome.reading.currency(gap.model_name),
                }
            )
        if outcome.rebuilt_rows is not None:
            self.stdout.write(
                _("rebuilt the rollups from %(rows)s log rows; removed %(gaps)s recorded gap(s) of the rebuilt months")
                % {"rows": f"{outcome.rebuilt_rows:,}", "gaps": outcome.gaps_removed}
            )
        if outcome.reading.extra and outcome.source == FROM_ROLLUPS:
            self.stderr.write(
                _(
                    "The log still holds rows the rollups do not (above); --from-rollups leaves them uncounted. "
                    "Check them, then run --from-log --fix to count them."
                )
            )
        lowered, fixed = len(outcome.lowered), len(outcome.differences)
        if lowered:
            summary = _("Fixed %(fixed)s counter(s), %(lowered)s of them lowered.") % {
                "fixed": fixed,
                "lowered": lowered,
            }
        else:
            summary = _("Fixed %(fixed)s counter(s).") % {"fixed": fixed}
        self.stdout.write(self.style.SUCCESS(summary if outcome.changed else _("Nothing to fix.")))
