"""python manage.py usage_convert --since T [--until T] [--apply]"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from ingest.management.commands.usage_reprice import _moment, _shown
from ingest.services import usage_convert_evaluated
from usage.services import CONVERT_CHUNK, ConvertOutcome, RepriceInvalid


class Command(BaseCommand):
    help = (
        "Convert the calls of [--since, --until) stored as unconverted (no exchange rate into the reporting "
        "currency was in force at their timestamp) now that their rates exist, each at the rate in force at its "
        "own timestamp. Without --apply it prints, per price currency, the calls it would convert and their "
        "totals, and changes nothing. --apply updates the log, the rollups and the budget alerts, in "
        f"transactions of {CONVERT_CHUNK} calls; an interrupted run is simply run again. Converted calls are "
        "never converted again: a changed rate does not rewrite stored figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="Start (inclusive): a date or an ISO 8601 datetime.")
        parser.add_argument("--until", help="End (exclusive; default now).")
        parser.add_argument("--apply", action="store_true", help="Write the conversions (default: a dry run).")
        parser.add_argument("--chunk-size", type=int, default=CONVERT_CHUNK, help="Calls per transaction.")

    def handle(self, *args, since: str, until: str | None, apply: bool, chunk_size: int, **options):
        try:
            outcome = usage_convert_evaluated(
                since=_moment(since, "--since"),
                until=None if until is None else _moment(until, "--until"),
                apply=apply,
                chunk_size=chunk_size,
            )
        except RepriceInvalid as error:
            raise CommandError(str(error)) from None
        self._report(outcome)

    def _report(self, outcome: ConvertOutcome) -> None:
        for totals in sorted(outcome.by_currency.values(), key=lambda totals: totals.currency):
            self.stdout.write(
                _("%(currency)s: %(calls)s calls %(verb)s, %(cost)s = %(reporting)s %(reporting_currency)s")
                % {
                    "currency": totals.currency,
                    "calls": totals.converted,
                    "verb": _("converted") if outcome.applied else _("would be converted"),
                    "cost": _shown(totals.cost),
                    "reporting": _shown(totals.reporting_cost),
                    "reporting_currency": outcome.reporting_currency,
                }
            )
            if totals.still_unconverted:
                self.stdout.write(
                    _("%(currency)s: %(calls)s calls still have no rate into %(reporting_currency)s in force")
                    % {
                        "currency": totals.currency,
                        "calls": totals.still_unconverted,
                        "reporting_currency": outcome.reporting_currency,
                    }
                )
        if not outcome.by_currency:
            self.stdout.write(_("No unconverted calls in this window."))
        elif not outcome.applied:
            self.stdout.write(_("Dry run: nothing was changed. Run again with --apply to convert."))
