"""Calls in USD and CNY with a CNY→USD rate history that changes mid-window, converted at ingestion
and later by usage_convert: one scenario, run on PostgreSQL by tests/test_fx_conversion.py and on
SQLite in a separate process (the embedded default). Every figure is worked out by hand below.

The reporting currency is USD. cny-chat costs 2 CNY per million input tokens and 8 per million
output tokens, so a call of 1,000,000 + 500,000 tokens costs 2 + 4 = 6 CNY; usd-chat costs 1 and 2 USD
per million, so 1,000,000 + 1,000,000 tokens cost 3 USD. CNY→USD: 0.1400 from 20 days ago, 0.1380
from the change instant (10 days ago) on; 0.1450 from 30 to 20 days ago is only added later.

    call                      rate in force   reporting cost (USD)
    A  cny, 25 days ago       none            unconverted (later 6 x 0.1450 = 0.87)
    B  cny, 1 µs before change 0.1400         6 x 0.1400 = 0.84
    C  cny, at the change      0.1380         6 x 0.1380 = 0.828   (half-open: the new rate)
    D  cny, an hour ago        0.1380         0.828
    E  usd, two hours ago      (same currency) 3
"""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from core.money import cost_from_float
from ingest.services import usage_convert_evaluated, usage_record_batch
from pricing.models import ExchangeRate
from pricing.services import model_pricing_create
from usage.consistency import usage_consistency_read
from usage.models import UsageLog
from usage.rollups import GRAINS, rollups_compact, rollups_rebuild
from usage.services import UsageRecordInput

CNY_CALL = {"prompt_tokens": 1_000_000, "completion_tokens": 500_000}
USD_CALL = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}


def same(left: Decimal | None, right: Decimal | None) -> bool:
    """Equal, exactly on PostgreSQL; on SQLite to its 15 significant digits (core.money)."""
    if left is None or right is None:
        return left is right
    if connection.vendor == "postgresql":
        return left == right
    return cost_from_float(float(left)) == cost_from_float(float(right))


def model_priced(name: str, currency: str, input_price: str, output_price: str, now) -> None:
    model_pricing_create(
        model_name=name,
        provider="Acme",
        display_name=name,
        model_type="chat",
        currency=currency,
        input_price_per_million=Decimal(input_price),
        output_price_per_million=Decimal(output_price),
        effective_from=now - timedelta(days=40),
        allow_past=True,
    )


def rollup_snapshot() -> dict:
    """Each rollup table's sums per key, delta rows added up (what every reader sees)."""
    snapshot = {}
    for grain in GRAINS:
        keys = [grain.key_column] + (["model_name"] if grain.per_model else [])
        per_key: dict = {}
        for row in grain.model.objects.values(*keys, "calls", "cost", "reporting_cost", "unconverted_calls"):
            key = tuple(row[k] for k in keys)
            calls, cost, reporting, unconverted = per_key.get(key, (0, Decimal(0), Decimal(0), 0))
            per_key[key] = (
                calls + row["calls"],
                cost + Decimal(row["cost"]),
                reporting + Decimal(row["reporting_cost"]),
                unconverted + row["unconverted_calls"],
            )
        snapshot[grain.model.__name__] = {
            key: (calls, _normal(cost), _normal(reporting), unconverted)
            for key, (calls, cost, reporting, unconverted) in per_key.items()
            if calls
        }
    return snapshot


def _normal(amount: Decimal) -> Decimal:
    return amount if connection.vendor == "postgresql" else cost_from_float(float(amount))


def _rates(now, change):
    ExchangeRate.objects.create(
        base_currency="CNY",
        quote_currency="USD",
        rate=Decimal("0.14"),
        effective_from=now - timedelta(days=20),
        effective_to=change,
        source="test",
    )
    return ExchangeRate.objects.create(
        base_currency="CNY", quote_currency="USD", rate=Decimal("0.138"), effective_from=change, source="test"
    )


def _assert_rollups_equal_the_log() -> None:
    rollups_compact()
    kept = rollup_snapshot()
    rollups_rebuild()
    assert rollup_snapshot() == kept
    reading = usage_consistency_read(full=True)
    assert reading.consistent, (reading.disagreements, reading.counter_drift)


def run() -> str:
    """The scenario; raises AssertionError on the first figure that is wrong."""
    now = timezone.now().replace(microsecond=0)
    change = now - timedelta(days=10)
    model_priced("cny-chat", "CNY", "2", "8", now)
    model_priced("usd-chat", "USD", "1", "2", now)
    second = _rates(now, change)
    moments = {
        "A": now - timedelta(days=25),
        "B": change - timedelta(microseconds=1),
        "C": change,
        "D": now - timedelta(hours=1),
    }
    records = [
        UsageRecordInput(model_name="cny-chat", timestamp=at, decision_id=k, **CNY_CALL) for k, at in moments.items()
    ]
    records.append(
        UsageRecordInput(model_name="usd-chat", timestamp=now - timedelta(hours=2), decision_id="E", **USD_CALL)
    )
    usage_record_batch(records=records)
    logs = {log.decision_id: log for log in UsageLog.objects.all()}
    first = ExchangeRate.objects.get(rate=Decimal("0.14"))
    expected = {
        "A": (Decimal(6), None, None, True),
        "B": (Decimal(6), Decimal("0.84"), first.pk, False),
        "C": (Decimal(6), Decimal("0.828"), second.pk, False),
        "D": (Decimal(6), Decimal("0.828"), second.pk, False),
        "E": (Decimal(3), Decimal(3), None, False),
    }
    for key, (cost, reporting, rate_id, unconverted) in expected.items():
        log = logs[key]
        assert same(log.cost, cost), (key, log.cost)
        assert same(log.reporting_cost, reporting), (key, log.reporting_cost)
        assert (log.exchange_rate_id, log.unconverted) == (rate_id, unconverted), key
    _assert_rollups_equal_the_log()
    totals = rollup_snapshot()["UsageRollupDailyTotal"].values()
    assert same(sum((t[2] for t in totals), Decimal(0)), Decimal("5.496"))  # 0.84 + 0.828 + 0.828 + 3
    assert sum(t[3] for t in totals) == 1

    # The rate for call A's moment arrives (history before the first stored rate).
    earliest = ExchangeRate.objects.create(
        base_currency="CNY",
        quote_currency="USD",
        rate=Decimal("0.145"),
        effective_from=now - timedelta(days=30),
        effective_to=now - timedelta(days=20),
        source="test",
    )
    before = rollup_snapshot()
    dry = usage_convert_evaluated(since=now - timedelta(days=60), until=now)
    assert (dry.converted, dry.still_unconverted, dry.applied) == (1, 0, False)
    assert same(dry.by_currency["CNY"].reporting_cost, Decimal("0.87"))
    assert UsageLog.objects.get(decision_id="A").unconverted, "a dry run changes nothing"
    assert rollup_snapshot() == before

    outside = usage_convert_evaluated(since=now - timedelta(days=24), until=now, apply=True)
    assert outside.converted == 0, "call A is outside this window"
    done = usage_convert_evaluated(since=now - timedelta(days=60), until=now, apply=True)
    assert (done.converted, done.still_unconverted) == (1, 0)
    a = UsageLog.objects.get(decision_id="A")
    assert (a.unconverted, a.exchange_rate_id) == (False, earliest.pk)
    assert same(a.reporting_cost, Decimal("0.87"))
    _assert_rollups_equal_the_log()
    totals = rollup_snapshot()["UsageRollupDailyTotal"].values()
    assert same(sum((t[2] for t in totals), Decimal(0)), Decimal("6.366"))  # 5.496 + 0.87
    assert sum(t[3] for t in totals) == 0
    assert usage_convert_evaluated(since=now - timedelta(days=60), until=now, apply=True).converted == 0

    # A changed rate never rewrites stored figures: only usage_convert converts, and only unconverted calls.
    ExchangeRate.objects.filter(pk=second.pk).update(rate=Decimal("0.2"))
    usage_convert_evaluated(since=now - timedelta(days=60), until=now, apply=True)
    assert same(UsageLog.objects.get(decision_id="D").reporting_cost, Decimal("0.828"))

    out = StringIO()
    call_command("usage_convert", "--since", (now - timedelta(days=60)).isoformat(), stdout=out)
    assert "No unconverted calls in this window." in out.getvalue(), out.getvalue()
    return "fx scenario ok"
