"""GET /api/v1/usage/decisions/<decision_id>: one decision's calls and totals (issue 17 point 2)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from ingest.services import usage_record
from tests.api_helpers import HttpsApiClient, exact_json
from usage.keys import api_key_create
from usage.records import TOKEN_FIELDS

pytestmark = pytest.mark.django_db


def reader() -> HttpsApiClient:
    _key, raw_key = api_key_create(name="decisions", scope="read")
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def test_a_decisions_calls_and_totals():
    now = timezone.now()
    usage_record(
        model_name="gpt-4o",
        decision_id="order-1",
        prompt_tokens=1000,
        completion_tokens=200,
        user_id=42,
        purpose="extract",
        timestamp=now - timedelta(minutes=2),
    )
    usage_record(
        model_name="claude-haiku-4-5",
        decision_id="order-1",
        prompt_tokens=500,
        completion_tokens=50,
        cost=Decimal("0.25"),
        success=False,
        error_message="timeout",
        timestamp=now - timedelta(minutes=1),
    )
    usage_record(model_name="no-such-model", decision_id="order-1", prompt_tokens=5, timestamp=now)
    usage_record(model_name="gpt-4o", decision_id="order-2", prompt_tokens=7)
    response = reader().get("/api/v1/usage/decisions/order-1")
    assert response.status_code == 200
    data = exact_json(response)["data"]
    assert data["decision_id"] == "order-1"
    calls = data["calls"]
    assert [call["model_name"] for call in calls] == ["gpt-4o", "claude-haiku-4-5", "no-such-model"]
    first = calls[0]
    # gpt-4o's list price (2.50 in, 10.00 out per million): 0.0025 + 0.002.
    assert (first["cost"], first["currency"], first["reporting_cost"], first["reporting_currency"]) == (
        Decimal("0.0045"),
        "USD",
        Decimal("0.0045"),
        "USD",
    )
    assert (first["prompt_tokens"], first["completion_tokens"], first["user_id"], first["purpose"]) == (
        1000,
        200,
        42,
        "extract",
    )
    assert calls[1]["error_message"] == "timeout"
    assert calls[1]["success"] is False
    assert calls[2]["cost"] is None
    assert calls[2]["cost_source"] == "unpriced"
    totals = data["totals"]
    assert totals["calls"] == 3
    assert totals["failed_calls"] == 1
    assert totals["prompt_tokens"] == 1505
    assert totals["completion_tokens"] == 250
    assert totals["reporting_cost"] == Decimal("0.2545")
    assert totals["currency"] == "USD"
    assert totals["unpriced_calls"] == 1
    assert totals["first_call_at"] == first["timestamp"]
    assert data["calls_truncated"] is False
    limited = exact_json(reader().get("/api/v1/usage/decisions/order-1", {"limit": 1}))["data"]
    assert len(limited["calls"]) == 1
    assert limited["calls_truncated"] is True
    assert limited["totals"]["calls"] == 3


def test_every_token_kind_is_listed_per_call_and_totalled():
    # Distinct counts per kind (and per call), so a kind missing, or two swapped, changes an answer.
    first = {
        "prompt_tokens": 9000,
        "completion_tokens": 800,
        "cached_tokens": 1000,
        "cache_write_5m_tokens": 200,
        "cache_write_1h_tokens": 30,
        "input_audio_tokens": 4,
        "reasoning_tokens": 500,
        "output_audio_tokens": 60,
        "output_image_tokens": 7,
    }
    second = {name: count * 2 + 1 for name, count in first.items()}
    usage_record(model_name="gpt-4o", decision_id="kinds", **first)
    usage_record(model_name="gpt-4o", decision_id="kinds", **second)
    data = exact_json(reader().get("/api/v1/usage/decisions/kinds"))["data"]
    assert [{name: call[name] for name in TOKEN_FIELDS} for call in data["calls"]] == [first, second]
    assert {name: data["totals"][name] for name in TOKEN_FIELDS} == {
        name: first[name] + second[name] for name in TOKEN_FIELDS
    }


def test_unknown_decision_is_a_404_and_bad_limit_a_400():
    client = reader()
    missing = client.get("/api/v1/usage/decisions/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "unknown_decision",
        "message": "No calls are recorded under decision id 'nope'.",
        "field": "decision_id",
    }
    usage_record(model_name="gpt-4o", decision_id="d")
    bad = client.get("/api/v1/usage/decisions/d", {"limit": 1001})
    assert bad.status_code == 400
    assert "limit" in bad.json()["error"]["fields"]
    chinese = client.get("/api/v1/usage/decisions/nope", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert chinese.json()["error"]["message"] != missing.json()["error"]["message"]


def test_the_lookup_is_an_index_scan_of_decision_id():
    """Every month of the log has its index on decision_id (the parent's, inherited), which the lookup
    can use whatever the planner makes of tiny test tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, bool_or(i.indexdef LIKE '%%(decision_id)') FROM pg_inherits h "
            "JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent "
            "LEFT JOIN pg_indexes i ON i.tablename = c.relname "
            "WHERE p.relname = 'ai_model_usage_log' GROUP BY c.relname"
        )
        partitions = dict(cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN SELECT * FROM ai_model_usage_log WHERE decision_id = 'x'")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert partitions, "the log is partitioned by month"
    assert all(partitions.values()), partitions
    assert "decision_id_idx" in plan, plan
