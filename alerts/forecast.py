"""Where the month's spend will end, and when a budget will be reached, at the current pace.

The method (README "Budgets and forecast"), for one scope (a model, a user, a purpose, or all calls)
in the reporting currency, with calendar days in TIME_ZONE:

- pace: the average daily cost of the trailing 7 complete days (the days before today). A scope with
  calls on fewer of the last 7 days than that (new this week) is averaged from its first day with
  calls to now, today's elapsed part counted as that fraction of a day (and the span as one day at
  least, so a first call at 00:10 is not a day's pace a hundred times over).
- weekday seasonality: when the scope has 4 weeks of history (calls on the first of the 28 complete
  days before today, or earlier), each weekday's expected cost is the pace times that weekday's factor,
  its average cost over those 28 days divided by their average daily cost. Otherwise every factor is 1.
- projection: the month's spend so far, plus the rest of today (the pace times today's factor times
  the part of today still to come), plus the pace times the factor of each remaining day of the month.
- reach date: the first day on which spend so far plus the expected costs from now on reaches the
  budget; none when it would not be reached this month; `already_reached` when spend has reached it.

Back-tested by tests/test_budget_forecast.py on generated histories with known trends (flat, growing
and shrinking by 1% a day, weekly seasonality, noise): made on day 15, the projection lands within
10% of the true month end.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from core.money import ZERO

TRAILING_DAYS = 7
SEASONAL_DAYS = 28
METHOD_TRAILING = "trailing_7_day_average"
METHOD_SEASONAL = "trailing_7_day_average_weekday_seasonality"


@dataclass(frozen=True)
class Forecast:
    """A scope's projected month-end spend (`projected`, in the reporting currency) and, against a
    budget, the day it is reached at the current pace."""

    projected: Decimal
    daily_pace: Decimal
    method: str
    history_days: int  # Complete days with history behind the pace (up to 28).
    reaches_on: date | None = None
    already_reached: bool = False

    @property
    def seasonal(self) -> bool:
        return self.method == METHOD_SEASONAL


def history_start(today: date) -> date:
    """The first day a forecast made on `today` reads (SEASONAL_DAYS complete days before today)."""
    return today - timedelta(days=SEASONAL_DAYS)


def forecast_month(
    *,
    daily: Mapping[date, Decimal],
    today: date,
    today_elapsed: Decimal,
    month_end: date,
    spent: Decimal,
    budget: Decimal | None = None,
) -> Forecast:
    """The forecast made on `today` (`today_elapsed`: the part of today gone, 0 to 1) for the month
    whose last day is the one before `month_end`: `daily` holds each day's cost from
    history_start(today) to today (today's so far; days missing cost nothing), `spent` the month's
    spend so far, `budget` the budget compared with (None: no reach date)."""
    first = history_start(today)
    complete = [first + timedelta(days=n) for n in range(SEASONAL_DAYS)]
    cost = {day: daily.get(day, ZERO) for day in complete}
    today_cost = daily.get(today, ZERO)
    with_calls = [day for day in complete if cost[day] > 0]
    first_call = with_calls[0] if with_calls else (today if today_cost > 0 else None)
    trailing = complete[-TRAILING_DAYS:]
    if first_call is None:
        pace, history = ZERO, 0
    elif first_call <= trailing[0]:
        pace, history = sum((cost[day] for day in trailing), ZERO) / TRAILING_DAYS, (today - first_call).days
    else:  # New this week: from its first day with calls to now.
        days = max(Decimal((today - first_call).days) + today_elapsed, Decimal(1))
        total = sum((cost[day] for day in complete if day >= first_call), ZERO) + today_cost
        pace, history = total / days, (today - first_call).days
    factors = {weekday: Decimal(1) for weekday in range(7)}
    method = METHOD_TRAILING
    if first_call is not None and first_call <= first:
        mean = sum(cost.values(), ZERO) / SEASONAL_DAYS
        if mean > 0:
            method = METHOD_SEASONAL
            for weekday in range(7):
                weekday_mean = sum((cost[day] for day in complete if day.weekday() == weekday), ZERO) / 4
                factors[weekday] = weekday_mean / mean
    history = min(history, SEASONAL_DAYS)
    expected = [(today, pace * factors[today.weekday()] * (1 - today_elapsed))]
    day = today + timedelta(days=1)
    while day < month_end:
        expected.append((day, pace * factors[day.weekday()]))
        day += timedelta(days=1)
    projected = spent + sum((amount for _day, amount in expected), ZERO)
    reaches_on, already = None, False
    if budget is not None:
        if spent >= budget:
            already = True
        else:
            running = spent
            for day, amount in expected:
                running += amount
                if amount > 0 and running >= budget:
                    reaches_on = day
                    break
    return Forecast(
        projected=projected,
        daily_pace=pace,
        method=method,
        history_days=history,
        reaches_on=reaches_on,
        already_reached=already,
    )


def day_elapsed(now: datetime, day_start: datetime, day_end: datetime) -> Decimal:
    """The part of the local day [day_start, day_end) gone at `now` (days of 23 or 25 hours too)."""
    whole = (day_end - day_start).total_seconds()
    gone = min(max((now - day_start).total_seconds(), 0), whole)
    return Decimal(str(round(gone / whole, 6))) if whole else Decimal(0)
