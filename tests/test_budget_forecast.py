"""The forecast's method (alerts.forecast), back-tested on generated histories with known trends:
made on day 15 of a month, the projection of the month's end lands within the stated error of the
true month end (README "Budgets and forecast"): 5% for steady and weekly-seasonal traffic (with 15%
daily noise), 12% for trends of up to 1% a day either way (a third a month; the trailing average
lags a trend by three and a half days). Then the method's arithmetic, worked by hand."""

import math
import random
from datetime import date, timedelta
from decimal import Decimal

import pytest

from alerts.forecast import METHOD_SEASONAL, METHOD_TRAILING, forecast_month, history_start

# The stated error of a projection made on day 15, per kind of history.
STEADY_ERROR, TREND_ERROR = Decimal("0.05"), Decimal("0.12")
STEADY = {"flat", "weekly"}
MONTH_START, MONTH_END = date(2026, 3, 1), date(2026, 4, 1)  # 31 days.
HISTORY_START = MONTH_START - timedelta(days=60)


def _history(kind: str, seed: int) -> dict[date, Decimal]:
    """A daily cost from HISTORY_START to the month's end with a known shape."""
    rng = random.Random(seed)
    costs = {}
    day, n = HISTORY_START, 0
    while day < MONTH_END:
        base = 100.0
        if kind == "growing":
            base *= 1.01**n
        elif kind == "shrinking":
            base *= 0.99**n
        elif kind == "weekly":
            base *= 0.3 if day.weekday() >= 5 else 1.28
        elif kind == "weekly_growing":
            base *= (0.3 if day.weekday() >= 5 else 1.28) * 1.005**n
        elif kind == "wave":
            base *= 1 + 0.2 * math.sin(n / 9)
        noise = 1 + rng.uniform(-0.15, 0.15)
        costs[day] = Decimal(str(round(base * noise, 6)))
        day += timedelta(days=1)
        n += 1
    return costs


def _forecast_on_day_15(costs: dict[date, Decimal], *, elapsed: Decimal, history_from: date = HISTORY_START):
    today = MONTH_START + timedelta(days=14)
    known = {day: cost for day, cost in costs.items() if history_from <= day < today}
    known[today] = costs[today] * elapsed
    spent = sum((cost for day, cost in known.items() if day >= MONTH_START), Decimal(0))
    return known, today, spent


@pytest.mark.parametrize("kind", ["flat", "growing", "shrinking", "weekly", "weekly_growing", "wave"])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("elapsed", [Decimal(0), Decimal("0.5")])
def test_projection_on_day_15_lands_within_the_stated_error(kind, seed, elapsed):
    costs = _history(kind, seed)
    true_end = sum((cost for day, cost in costs.items() if MONTH_START <= day < MONTH_END), Decimal(0))
    known, today, spent = _forecast_on_day_15(costs, elapsed=elapsed)
    forecast = forecast_month(daily=known, today=today, today_elapsed=elapsed, month_end=MONTH_END, spent=spent)
    assert forecast.method == METHOD_SEASONAL  # 60 days of history.
    error = round(abs(forecast.projected - true_end) / true_end, 6)
    assert error <= (STEADY_ERROR if kind in STEADY else TREND_ERROR), (kind, seed, forecast.projected, true_end, error)


def test_weekday_seasonality_beats_the_plain_average_on_weekly_traffic():
    """With the weekend the rest of the month, the weekday factors see it coming; a plain average does not."""
    costs = {}
    day = HISTORY_START
    while day < MONTH_END:
        costs[day] = Decimal(10) if day.weekday() >= 5 else Decimal(100)
        day += timedelta(days=1)
    true_end = sum((cost for day, cost in costs.items() if day >= MONTH_START), Decimal(0))
    known, today, spent = _forecast_on_day_15(costs, elapsed=Decimal(0))
    seasonal = forecast_month(daily=known, today=today, today_elapsed=Decimal(0), month_end=MONTH_END, spent=spent)
    short = {day: cost for day, cost in known.items() if day >= today - timedelta(days=10)}
    plain = forecast_month(daily=short, today=today, today_elapsed=Decimal(0), month_end=MONTH_END, spent=spent)
    assert seasonal.method == METHOD_SEASONAL
    assert plain.method == METHOD_TRAILING
    assert seasonal.projected == true_end  # Exact: the shape repeats every week.
    assert abs(plain.projected - true_end) > 0


def test_trailing_average_and_reach_date_worked_by_hand():
    # 10 a day for the last 10 days (not 4 weeks: no seasonality), day 15 at noon with 5 spent today.
    today = MONTH_START + timedelta(days=14)
    daily = {today - timedelta(days=n): Decimal(10) for n in range(1, 11)}
    daily[today] = Decimal(5)
    forecast = forecast_month(
        daily=daily,
        today=today,
        today_elapsed=Decimal("0.5"),
        month_end=MONTH_END,
        spent=Decimal(145),
        budget=Decimal(200),
    )
    assert forecast.method == METHOD_TRAILING
    assert forecast.daily_pace == Decimal(10)
    # 145 + 5 (rest of today) + 16 days x 10.
    assert forecast.projected == Decimal(310)
    # 150 at the end of the 15th, 160 on the 16th, ... 200 on the 20th.
    assert forecast.reaches_on == date(2026, 3, 20)
    assert not forecast.already_reached


def test_new_scope_is_paced_from_its_first_call_and_a_reached_budget_says_so():
    today = MONTH_START + timedelta(days=14)
    daily = {today - timedelta(days=2): Decimal(30), today - timedelta(days=1): Decimal(30), today: Decimal(15)}
    forecast = forecast_month(
        daily=daily,
        today=today,
        today_elapsed=Decimal("0.5"),
        month_end=MONTH_END,
        spent=Decimal(75),
        budget=Decimal(50),
    )
    assert forecast.daily_pace == Decimal(30)  # 75 over 2.5 days.
    assert forecast.history_days == 2
    assert forecast.already_reached
    assert forecast.reaches_on is None
    assert forecast.projected == Decimal(75) + Decimal(15) + 16 * Decimal(30)


def test_no_calls_no_pace_and_a_budget_out_of_reach_has_no_date():
    today = MONTH_START + timedelta(days=14)
    nothing = forecast_month(daily={}, today=today, today_elapsed=Decimal(0), month_end=MONTH_END, spent=Decimal(0))
    assert nothing.projected == 0
    assert nothing.daily_pace == 0
    assert nothing.reaches_on is None
    daily = {history_start(today) + timedelta(days=n): Decimal(1) for n in range(28)}
    far = forecast_month(
        daily=daily, today=today, today_elapsed=Decimal(0), month_end=MONTH_END, spent=Decimal(14), budget=Decimal(1000)
    )
    assert far.projected == Decimal(14 + 17)
    assert far.reaches_on is None
    assert not far.already_reached
