"""Demo data for local runs: realistic usage over the last weeks, recorded through the real pipeline."""

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from ingest.services import usage_record_batch
from pricing.services import model_pricing_budgets_set
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
DEMO_BUDGETS = {"gpt-4o": Decimal("2.00"), "claude-sonnet-4-5": Decimal("5.00"), "deepseek-chat": Decimal("1.20")}


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
    model_pricing_budgets_set(budgets=DEMO_BUDGETS)
    rng = random.Random(seed)  # noqa: S311 -- demo data, reproducible on purpose
    names = list(MODEL_WEIGHTS)
    weights = list(MODEL_WEIGHTS.values())
    end = quarter_hour_floor(timezone.now())
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
