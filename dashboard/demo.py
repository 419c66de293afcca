"""Demo data for local runs: realistic usage over the last weeks, recorded through the real pipeline."""

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from alerts.services import global_budget_set
from core.money import rate_stored
from ingest.services import usage_record_batch
from pricing.models import ExchangeRate, ModelPricing
from pricing.services import model_pricing_budgets_set, model_pricing_set_prices
from usage.records import UsageRecordInput
from usage.rollups import quarter_hour_floor
from usage.selectors import usage_any_recorded

DEMO_STAFF_USERNAME = "admin"
PURPOSES = ["chat", "summarise", "classify", "code-review", "embedding-rerank"]
# Relative popularity: cheap models get most calls, as in real teams.
MODEL_WEIGHTS = {
    "deepseek-chat": 30,
    "gpt-4o-mini": 25,
    "qwen-plus": 12,
    "claude-haiku-4-5": 10,
    "gemini-2.5-flash": 8,
    "deepseek-reasoner": 6,
    "gpt-4o": 5,
    "gpt-4.1": 2,
    "claude-sonnet-4-5": 2,
}
# Each in its model's currency (the default budget currency): USD, USD, CNY.
DEMO_BUDGETS = {"gpt-4o": Decimal("2.00"), "claude-sonnet-4-5": Decimal("5.00"), "deepseek-chat": Decimal("8.50")}
# The global budget, in USD: every model's spend counts, the CNY models' too (in the reporting currency).
DEMO_GLOBAL_BUDGET = (Decimal("25.00"), "USD")
# DeepSeek and Qwen publish CNY list prices (per million tokens: input, output, cache read): the demo
# prices them in CNY over its whole span, beside the USD-priced GPT, Claude and Gemini models.
DEMO_CNY_PRICES = {
    "deepseek-chat": ("2", "3", "0.2", "DeepSeek API pricing (CNY), V3.2"),
    "deepseek-reasoner": ("2", "3", "0.2", "DeepSeek API pricing (CNY), V3.2"),
    "qwen-plus": ("0.8", "2", None, "Alibaba Cloud Model Studio (China), qwen-plus, input <= 128K (CNY)"),
}
# USD->CNY reference rates, each in force from a UTC midnight so many days before the demo's end (the
# first one from before its first call), as fx_import would store the ECB's: the rate changes mid-window.
DEMO_USD_CNY_RATES = ((None, "7.1012"), (60, "7.1336"), (30, "7.1187"), (7, "7.0954"))
DEMO_RATE_SOURCE = "aicost demo (illustrative USD/CNY reference rates)"


def _demo_prices_and_rates(*, first_call: datetime, end: datetime) -> None:
    """The demo's CNY prices and USD<->CNY rates, in force from before its first call (the database has
    no usage yet, so prices may start in the past). The rates go both ways, so the demo is converted
    whichever of the two is AICOST_REPORTING_CURRENCY (bin/dev writes CNY)."""
    since = datetime.combine(first_call.astimezone(UTC).date(), time.min, tzinfo=UTC)
    for model_name, (input_price, output_price, cached_price, source) in DEMO_CNY_PRICES.items():
        pricing = ModelPricing.objects.filter(model_name=model_name).first()
        if pricing is None or pricing.currency == "CNY":
            continue
        model_pricing_set_prices(
            pricing=pricing,
            input_price_per_million=Decimal(input_price),
            output_price_per_million=Decimal(output_price),
            cached_input_price_per_million=None if cached_price is None else Decimal(cached_price),
            currency="CNY",
            effective_from=since,
            source=source,
            allow_past=True,
        )
    if ExchangeRate.objects.filter(source=DEMO_RATE_SOURCE).exists():
        return
    end_day = datetime.combine(end.astimezone(UTC).date(), time.min, tzinfo=UTC)
    # The first rate from `since`; a change only when it falls after it (a short demo has fewer).
    history = [(since, DEMO_USD_CNY_RATES[0][1])]
    history += [(end_day - timedelta(days=days), rate) for days, rate in DEMO_USD_CNY_RATES[1:]]
    history = [history[0]] + [(start, rate) for start, rate in history[1:] if start > since]
    for n, (start, rate) in enumerate(history):
        until = history[n + 1][0] if n + 1 < len(history) else None
        for base, quote, value in (("USD", "CNY", Decimal(rate)), ("CNY", "USD", rate_stored(1 / Decimal(rate)))):
            # The demo's own history, written directly (as a fixture would be); fx_import and the
            # exchange-rate admin keep real ones through pricing.services.
            ExchangeRate.objects.create(
                base_currency=base,
                quote_currency=quote,
                rate=value,
                effective_from=start,
                effective_to=until,
                source=DEMO_RATE_SOURCE,
            )


def _demo_record(rng: random.Random, model_name: str, at) -> UsageRecordInput:
    prompt = int(rng.lognormvariate(7, 0.8))
    failed = rng.random() < 0.03
    return UsageRecordInput(
        model_name=model_name,
        prompt_tokens=prompt,
        completion_tokens=0 if failed else int(rng.lognormvariate(5.5, 0.7)),
        cached_tokens=int(prompt * rng.choice([0, 0, 0.3, 0.6])),
        decision_id=f"demo-{rng.getrandbits(48):012x}",
        user_id=rng.randint(1, 12),
        response_time=round(rng.uniform(0.3, 6.0), 3),
        success=not failed,
        error_message="upstream timeout" if failed else "",
        purpose=rng.choice(PURPOSES),
        timestamp=at,
    )


@transaction.atomic
def demo_usage_load(*, days: int = 90, calls_per_day: int = 300, seed: int = 7) -> int:
    """Record demo calls spread over the `days` days before the start of the current quarter hour (the
    stats read a window's unfinished quarter hour from the log alone, so calls in it would leave "All
    time" once the log is lost, until the quarter passes). Does nothing if any usage is on record
    (log or rollups): loading it on top of rollups that still count lost rows would count it twice."""
    if usage_any_recorded():
        return 0
    end = quarter_hour_floor(timezone.now())
    _demo_prices_and_rates(first_call=end - timedelta(days=days + 1), end=end)
    model_pricing_budgets_set(budgets=DEMO_BUDGETS)
    global_budget_set(monthly_budget=DEMO_GLOBAL_BUDGET[0], currency=DEMO_GLOBAL_BUDGET[1])
    rng = random.Random(seed)  # noqa: S311 -- demo data, reproducible on purpose
    names = list(MODEL_WEIGHTS)
    weights = list(MODEL_WEIGHTS.values())
    total = 0
    for day in range(days, -1, -1):
        day_calls = int(calls_per_day * rng.uniform(0.6, 1.4))
        batch = []
        for _ in range(day_calls):
            at = end - timedelta(days=day, seconds=rng.uniform(0, 86_400))
            if at < end:
                batch.append(_demo_record(rng, rng.choices(names, weights)[0], at))
        batch.append(_demo_record(rng, "llama-3-70b-selfhosted", end - timedelta(days=day, hours=1)))
        usage_record_batch(records=batch)
        total += len(batch)
    return total


@dataclass(frozen=True)
class StaffLogin:
    username: str
    password: str | None  # None: the user existed and kept its password


@transaction.atomic
def demo_staff_login_ensure() -> StaffLogin:
    """The demo's staff superuser. Only a new user, or one without a usable password, gets a (random)
    password; an existing password is kept, so a re-run neither locks anyone out nor ends their sessions."""
    user, created = get_user_model().objects.get_or_create(
        username=DEMO_STAFF_USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    password = None
    if created or not user.has_usable_password():
        password = secrets.token_urlsafe(12)
        user.set_password(password)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    return StaffLogin(username=DEMO_STAFF_USERNAME, password=password)
