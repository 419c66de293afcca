"""The European Central Bank's euro foreign exchange reference rates, as it publishes them in CSV.

Two formats, both a header row of currency codes and one row per business day, each rate the units of
that currency one euro buys:

- the daily file `eurofxref.csv` (in `eurofxref.zip`): one day, fields separated by ", ", the date
  written "30 October 2026", a trailing ", ";
- the history file `eurofxref-hist.csv` (in `eurofxref-hist.zip`): every day since 1999, newest first,
  "," between fields, ISO dates, "N/A" for a currency not quoted that day, a trailing ",".

Rates between two other currencies are crossed through the euro: X→Q = (EUR→Q) / (EUR→X), computed
in core.money.MONEY_CONTEXT and rounded once to the stored scale (core.money.rate_stored); EUR→Q is
the published figure, Q→EUR its inverse. A rate published for day D is in force from the next UTC
midnight (D+1 00:00 UTC) until the next one starts: a call is converted at the latest rate published
before its UTC day began, so weekends and holidays keep the last business day's rate.
"""

import csv
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.utils.translation import gettext as _

from core.money import MONEY_CONTEXT, rate_stored
from pricing.services import ExchangeRateQuote

ECB_CURRENCY = "EUR"
NOT_QUOTED = ("N/A", "")
MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        start=1,
    )
}
_CODE = re.compile(r"[A-Z]{3}")
_WRITTEN_DATE = re.compile(r"(\d{1,2}) ([A-Za-z]+) (\d{4})")


class EcbFormatError(ValueError):
    """The file is not one of the ECB's reference-rate CSV files (the message says where)."""


@dataclass(frozen=True)
class EcbDay:
    """One business day's reference rates: currency -> units of it per one euro (quoted ones only)."""

    day: date
    rates: dict[str, Decimal]


@dataclass(frozen=True)
class EcbRates:
    """A parsed file: its currency columns in the file's order, and its days, oldest first."""

    daily: bool
    currencies: tuple[str, ...]
    days: tuple[EcbDay, ...]

    def quoted_currencies(self) -> set[str]:
        """The currencies quoted on at least one of its days (a column may be all N/A)."""
        return {currency for day in self.days for currency in day.rates}


def _date(cell: str, line: int) -> tuple[date, bool]:
    """A date as either file writes it; True when in the daily file's words ("30 October 2026")."""
    written = _WRITTEN_DATE.fullmatch(cell)
    try:
        if written:
            month = MONTHS.get(written[2].capitalize())
            if month is not None:
                return date(int(written[3]), month, int(written[1])), True
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", cell):
            return date.fromisoformat(cell), False
    except ValueError:
        pass
    raise EcbFormatError(_("line %(line)s: %(value)r is not a date.") % {"line": line, "value": cell})


def _rate(cell: str, line: int, currency: str) -> Decimal | None:
    if cell in NOT_QUOTED:
        return None
    try:
        rate = Decimal(cell)
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or rate <= 0:
        raise EcbFormatError(
            _("line %(line)s, %(currency)s: %(value)r is not a positive rate.")
            % {"line": line, "currency": currency, "value": cell}
        )
    return rate


def _cells(row: list[str]) -> list[str]:
    """The fields of a row, spaces around them and the trailing empty field(s) removed."""
    cells = [cell.strip() for cell in row]
    while cells and cells[-1] == "":
        cells.pop()
    return cells


def ecb_rates_parse(*, text: str) -> EcbRates:
    """The daily or the history CSV file's rates. Raises EcbFormatError naming the line."""
    rows = [(number, _cells(row)) for number, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), 1)]
    rows = [(number, cells) for number, cells in rows if cells]
    if not rows or rows[0][1][0].lower() != "date":
        raise EcbFormatError(_("The first line is not the ECB's header (Date, then currency codes)."))
    currencies = tuple(rows[0][1][1:])
    bad = [code for code in currencies if not _CODE.fullmatch(code) or code == ECB_CURRENCY]
    if bad or not currencies or len(set(currencies)) != len(currencies):
        raise EcbFormatError(
            _("line 1: the currency columns must be distinct ISO 4217 codes other than EUR, not %(codes)s.")
            % {"codes": ", ".join(bad or currencies)}
        )
    days: dict[date, EcbDay] = {}
    written = set()
    for number, cells in rows[1:]:
        if len(cells) > len(currencies) + 1:
            raise EcbFormatError(
                _("line %(line)s has %(found)s fields; the header has %(expected)s.")
                % {"line": number, "found": len(cells), "expected": len(currencies) + 1}
            )
        day, in_words = _date(cells[0], number)
        if day in days:
            raise EcbFormatError(_("line %(line)s: %(day)s is given twice.") % {"line": number, "day": day})
        written.add(in_words)
        values = cells[1:] + [""] * (len(currencies) + 1 - len(cells))
        rates = {}
        for currency, cell in zip(currencies, values, strict=True):
            rate = _rate(cell, number, currency)
            if rate is not None:
                rates[currency] = rate
        days[day] = EcbDay(day=day, rates=rates)
    if not days:
        raise EcbFormatError(_("The file holds no day's rates."))
    return EcbRates(daily=written == {True}, currencies=currencies, days=tuple(days[day] for day in sorted(days)))


def ecb_file_read(*, path: Path) -> EcbRates:
    """A daily or history file as the ECB publishes it: the CSV, or the zip holding it
    (eurofxref.zip, eurofxref-hist.zip). Raises EcbFormatError, or OSError when it cannot be read."""
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [name for name in archive.namelist() if name.lower().endswith(".csv")]
            if len(names) != 1:
                raise EcbFormatError(
                    _("The zip must hold one CSV file (eurofxref.csv or eurofxref-hist.csv), not %(count)s.")
                    % {"count": len(names)}
                )
            data = archive.read(names[0])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EcbFormatError(_("The file is not UTF-8 text.")) from error
    return ecb_rates_parse(text=text)


def ecb_rate_effective_from(day: date) -> datetime:
    """When the rate published for `day` comes into force: the next UTC midnight."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def ecb_cross_rate(*, per_euro_base: Decimal, per_euro_quote: Decimal) -> Decimal:
    """Units of the quote currency per unit of the base one, from both per-euro figures (EUR: 1),
    rounded once to the stored scale."""
    return rate_stored(MONEY_CONTEXT.divide(per_euro_quote, per_euro_base))


def _since_kept(quotes: list[ExchangeRateQuote], since: datetime) -> list[ExchangeRateQuote]:
    """Of one pair's quotes (oldest first), the ones in force at some moment from `since` on: the one
    in force at `since` and every later one."""
    kept = [quote for quote in quotes if quote.effective_from >= since]
    earlier = [quote for quote in quotes if quote.effective_from < since]
    if earlier and (not kept or kept[0].effective_from > since):
        kept.insert(0, earlier[-1])
    return kept


def ecb_exchange_rates(
    *,
    rates: EcbRates,
    quote_currencies: Iterable[str],
    base_currencies: Iterable[str] | None = None,
    since: date | None = None,
    source: str,
) -> list[ExchangeRateQuote]:
    """The rates from each base currency (default: every currency of the file, and EUR) into each
    quote currency, one per day both are quoted, each in force from the next UTC midnight; with
    `since`, only those in force at some moment from that day's 00:00 UTC on. Sorted by pair, then start."""
    quotes = list(dict.fromkeys(quote_currencies))
    bases = list(dict.fromkeys(base_currencies if base_currencies is not None else (*rates.currencies, ECB_CURRENCY)))
    by_pair: dict[tuple[str, str], list[ExchangeRateQuote]] = defaultdict(list)
    for day in rates.days:
        per_euro = {ECB_CURRENCY: Decimal(1), **day.rates}
        starts = ecb_rate_effective_from(day.day)
        for quote in quotes:
            if quote not in per_euro:
                continue
            for base in bases:
                if base == quote or base not in per_euro:
                    continue
                rate = ecb_cross_rate(per_euro_base=per_euro[base], per_euro_quote=per_euro[quote])
                by_pair[(base, quote)].append(
                    ExchangeRateQuote(
                        base_currency=base, quote_currency=quote, rate=rate, effective_from=starts, source=source
                    )
                )
    since_start = None if since is None else datetime.combine(since, time(0), tzinfo=UTC)
    result = []
    for pair in sorted(by_pair):
        pair_quotes = by_pair[pair]
        result.extend(pair_quotes if since_start is None else _since_kept(pair_quotes, since_start))
    return result
