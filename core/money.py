"""Money and price precision, defined once. Amounts are Decimal everywhere; never float.

Storage never rounds: a price keeps the places it was published with (up to 18 per million tokens),
and a cost is price x tokens / 10^6 to the last digit (24 places), so a sum of calls equals the cost
of their summed tokens. Rounding happens at display only, in money_display.
"""

import decimal
from decimal import ROUND_HALF_EVEN, Context, Decimal

# Prices are per one million tokens, kept as published (LiteLLM: 0.0359375, 0.20000000000000002).
PRICE_MAX_DIGITS = 30
PRICE_DECIMAL_PLACES = 18

# price (18 places) x tokens / 10^6: every cost of one call is a whole number of 10^-24.
COST_DECIMAL_PLACES = PRICE_DECIMAL_PLACES + 6
COST_MAX_DIGITS = 40
# Exchange rates (pricing.ExchangeRate): units of the quote currency per unit of the base currency.
# ECB reference rates have at most 6 significant digits; cross rates through EUR are rounded once,
# half-even, to RATE_DECIMAL_PLACES when they are stored.
RATE_MAX_DIGITS = 30
RATE_DECIMAL_PLACES = 18

# What reports, the APIs and the cost page show of a cost (as before exact storage): 8 places,
# half to even, applied once, by money_display.
COST_DISPLAY_PLACES = 8

# Percentages (budget use, success rate) as shown to people.
PERCENT_MAX_DIGITS = 9
PERCENT_DECIMAL_PLACES = 2

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
COST_QUANTUM = Decimal(1).scaleb(-COST_DECIMAL_PLACES)
COST_DISPLAY_QUANTUM = Decimal(1).scaleb(-COST_DISPLAY_PLACES)
PERCENT_QUANTUM = Decimal(1).scaleb(-PERCENT_DECIMAL_PLACES)
RATE_QUANTUM = Decimal(1).scaleb(-RATE_DECIMAL_PLACES)
ZERO = Decimal(0)

# Python's default context keeps 28 significant digits: too few for a 40-digit cost. Money
# arithmetic that must be exact runs in this one (and core.apps installs its precision as the
# default, so sums of costs in Python are exact too).
MONEY_PRECISION = 2 * COST_MAX_DIGITS
MONEY_CONTEXT = Context(
    prec=MONEY_PRECISION,
    rounding=ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_EXACT = MONEY_CONTEXT.copy()
_EXACT.traps[decimal.Inexact] = True
# SQLite keeps decimals as floating point; Django reads them with 15 significant digits.
_SQLITE_DIGITS = Context(prec=15, rounding=ROUND_HALF_EVEN)


def money_context_install() -> None:
    """Make MONEY_CONTEXT's precision the default of this thread and of threads started later."""
    decimal.DefaultContext.prec = max(decimal.DefaultContext.prec, MONEY_PRECISION)
    context = decimal.getcontext()
    context.prec = max(context.prec, MONEY_PRECISION)


def money_display(amount: Decimal) -> Decimal:
    """A cost as people see it: COST_DISPLAY_PLACES places, half to even. The only rounding of money."""
    return amount.quantize(COST_DISPLAY_QUANTUM, rounding=ROUND_HALF_EVEN, context=MONEY_CONTEXT)


def cost_exact(amount: Decimal) -> Decimal:
    """An exact cost at the stored scale (24 places); raises decimal.Inexact rather than round."""
    return _EXACT.quantize(amount, COST_QUANTUM)  # The context's method: no keyword parsing per call.


def cost_converted(cost: Decimal, rate: Decimal) -> Decimal:
    """A cost in another currency: cost x rate, rounded half-even once to the stored scale (24
    places; at most 5e-25 per call, far below what is ever shown)."""
    return MONEY_CONTEXT.quantize(MONEY_CONTEXT.multiply(cost, rate), COST_QUANTUM)


def rate_stored(rate: Decimal) -> Decimal:
    """An exchange rate at the stored scale (18 places), rounded half-even (cross rates through EUR)."""
    return rate.quantize(RATE_QUANTUM, context=MONEY_CONTEXT)


def cost_from_float(value: float) -> Decimal:
    """A cost SQLite summed as floating point, read as Django reads its decimals (15 significant digits)."""
    return _SQLITE_DIGITS.create_decimal_from_float(value)


def decimal_places(value: Decimal) -> int:
    """How many places after the point a Decimal carries (0 for whole numbers)."""
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def quantize_percent(amount: Decimal) -> Decimal:
    return amount.quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_EVEN, context=MONEY_CONTEXT)


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole as a percentage; 0 when whole is 0 (nothing to compare against)."""
    if not whole:
        return quantize_percent(ZERO)
    return quantize_percent(MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(Decimal(part), 100), Decimal(whole)))


# How the page writes an amount, per language (money_format; the page's script reads the same table).
# English keeps "USD 1234.56"; Chinese writes the currency's symbol and groups thousands: "¥1,234.56".
CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "JP¥", "HKD": "HK$"}
MONEY_FORMATS = {
    "en": {"symbols": None, "grouped": False},
    "zh-hans": {"symbols": CURRENCY_SYMBOLS, "grouped": True},
}


def money_format_rule(language: str) -> dict:
    """The rule of money_format for a language code (e.g. "zh-hans", "en-us"); English when unknown."""
    language = (language or "en").lower()
    return MONEY_FORMATS.get(language) or MONEY_FORMATS.get(language.split("-")[0]) or MONEY_FORMATS["en"]


def money_format(amount: Decimal | None, currency: str | None, *, language: str) -> str:
    """An amount as the cost page shows it, to 2 places (half up): "USD 1234.56" in English,
    "¥1,234.56" for CNY and "$1,234.56" for USD in Chinese; an en dash for no amount."""
    if amount is None:
        return "\u2013"
    rule = money_format_rule(language)
    value = Decimal(amount).quantize(Decimal("0.01"), rounding=decimal.ROUND_HALF_UP, context=MONEY_CONTEXT)
    digits = f"{abs(value):,.2f}" if rule["grouped"] else f"{abs(value):.2f}"
    sign = "-" if value < 0 else ""
    symbol = (rule["symbols"] or {}).get(currency or "")
    if symbol:
        return f"{sign}{symbol}{digits}"
    return f"{currency} {sign}{digits}" if currency else f"{sign}{digits}"
