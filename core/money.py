"""Money and price precision, defined once. Amounts are Decimal everywhere; never float."""

from decimal import ROUND_HALF_EVEN, Decimal

# Prices are per one million tokens, e.g. 0.150000 USD.
PRICE_MAX_DIGITS = 14
PRICE_DECIMAL_PLACES = 6

# A single call can cost a few millionths of a cent; 8 places keep one cached token exact.
COST_MAX_DIGITS = 20
COST_DECIMAL_PLACES = 8

# Percentages (budget use, success rate) as shown to people.
PERCENT_MAX_DIGITS = 9
PERCENT_DECIMAL_PLACES = 2

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
COST_QUANTUM = Decimal(1).scaleb(-COST_DECIMAL_PLACES)
PERCENT_QUANTUM = Decimal(1).scaleb(-PERCENT_DECIMAL_PLACES)
ZERO = Decimal(0)


def quantize_cost(amount: Decimal) -> Decimal:
    """Round a cost to the stored precision (banker's rounding, so sums do not drift)."""
    return amount.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def quantize_percent(amount: Decimal) -> Decimal:
    return amount.quantize(PERCENT_QUANTUM, rounding=ROUND_HALF_EVEN)


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole as a percentage; 0 when whole is 0 (nothing to compare against)."""
    if not whole:
        return quantize_percent(ZERO)
    return quantize_percent(Decimal(part) * 100 / Decimal(whole))
