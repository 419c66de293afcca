from collections import Counter
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pricing.ecb import ECB_CURRENCY, EcbFormatError, ecb_exchange_rates, ecb_file_read
from pricing.services import CURRENCY_CODE, PairImport, exchange_rates_import


def _currency(value: str) -> str:
    code = value.strip().upper()
    if not CURRENCY_CODE.fullmatch(code):
        raise CommandError(_("%(value)r is not an ISO 4217 currency code (e.g. USD).") % {"value": value})
    return code


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(_("--since takes a date, YYYY-MM-DD (not %(value)r).") % {"value": value}) from error


def _moment(at) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def _pair_line(plan: PairImport) -> str:
    parts = [
        _("%(new)s new, %(unchanged)s unchanged, %(refused)s refused")
        % {"new": len(plan.new), "unchanged": plan.unchanged, "refused": len(plan.refused)}
    ]
    if plan.new:
        parts.append(
            _("new rates from %(first)s to %(last)s")
            % {"first": _moment(plan.new[0].effective_from), "last": _moment(plan.new[-1].effective_from)}
        )
    if plan.closed is not None:
        parts.append(
            _("closes the rate %(rate)s in force since %(start)s at %(end)s")
            % {
                "rate": f"{plan.closed.rate.rate.normalize():f}",
                "start": _moment(plan.closed.rate.effective_from),
                "end": _moment(plan.closed.effective_to),
            }
        )
    return f"  {plan.base_currency}→{plan.quote_currency}: " + "; ".join(parts)


class Command(BaseCommand):
    help = gettext_lazy(
        "Import exchange rates from a European Central Bank reference-rate file: the daily eurofxref.csv or the "
        "history eurofxref-hist.csv (or the .zip the ECB publishes them in). Rates between other currencies are "
        "crossed through EUR; the rate published for a day is in force from the next 00:00 UTC. Without --apply, "
        "shows what would change and writes nothing. No network access."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--to",
            dest="quote_currencies",
            action="append",
            type=_currency,
            default=[],
            help=gettext_lazy("Currency to convert into (repeatable; default: AICOST_REPORTING_CURRENCY)."),
        )
        parser.add_argument(
            "--from",
            dest="base_currencies",
            action="append",
            type=_currency,
            default=[],
            help=gettext_lazy("Currency to convert from (repeatable; default: every currency of the file, and EUR)."),
        )
        parser.add_argument(
            "--since",
            type=_day,
            help=gettext_lazy("Only the rates in force at some moment from this day's 00:00 UTC on (YYYY-MM-DD)."),
        )
        parser.add_argument(
            "--apply", action="store_true", help=gettext_lazy("Store the new rates (default: dry run).")
        )

    def handle(self, *args, file: Path, quote_currencies, base_currencies, since, apply: bool, **options):
        try:
            rates = ecb_file_read(path=file)
        except (OSError, EcbFormatError) as error:
            raise CommandError(f"{file}: {error}") from error
        available = {*rates.currencies, ECB_CURRENCY}
        quotes = quote_currencies or [settings.AICOST_REPORTING_CURRENCY]
        missing = sorted({*quotes, *base_currencies} - available)
        if missing:
            raise CommandError(
                _("%(file)s has no rates for %(currencies)s.") % {"file": file.name, "currencies": ", ".join(missing)}
            )
        self.stdout.write(
            _("%(file)s: the ECB's %(kind)s file, %(days)s day(s) from %(first)s to %(last)s, %(count)s currencies.")
            % {
                "file": file.name,
                "kind": _("daily") if rates.daily else _("history"),
                "days": len(rates.days),
                "first": rates.days[0].day,
                "last": rates.days[-1].day,
                "count": len(rates.quoted_currencies()),
            }
        )
        source = _("ECB reference rates (%(file)s)") % {"file": file.name}
        given = ecb_exchange_rates(
            rates=rates,
            quote_currencies=quotes,
            base_currencies=base_currencies or None,
            since=since,
            source=source,
        )
        try:
            done = exchange_rates_import(quotes=given, apply=apply, now=timezone.now())
        except IntegrityError as error:  # SQLite: another import wrote the same rates meanwhile.
            raise CommandError(
                _("Nothing was stored: the rates changed while this import ran (%(error)s). Run it again.")
                % {"error": error}
            ) from error
        for plan in done.pairs.values():
            self.stdout.write(_pair_line(plan))
        self._refusals(done.refused)
        self.stdout.write(
            _("Total: %(new)s new, %(unchanged)s unchanged, %(closed)s closed, %(refused)s refused.")
            % {
                "new": len(done.new),
                "unchanged": done.unchanged,
                "closed": len(done.closed),
                "refused": len(done.refused),
            }
        )
        if not apply:
            self.stdout.write(_("Dry run: nothing was written. Run again with --apply to store the new rates."))
        elif done.new:
            self.stdout.write(self.style.SUCCESS(_("Stored %(count)s new rate(s).") % {"count": len(done.new)}))

    def _refusals(self, refused) -> None:
        """Per pair and reason: how many, and the first one's words (not one line per quote)."""
        counts = Counter(
            (refusal.quote.base_currency, refusal.quote.quote_currency, refusal.code) for refusal in refused
        )
        shown = set()
        for refusal in refused:
            key = (refusal.quote.base_currency, refusal.quote.quote_currency, refusal.code)
            if key in shown:
                continue
            shown.add(key)
            self.stderr.write(
                _("! %(base)s→%(quote)s: %(count)s refused, e.g. %(reason)s")
                % {"base": key[0], "quote": key[1], "count": counts[key], "reason": refusal.reason}
            )
