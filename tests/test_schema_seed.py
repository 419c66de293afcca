"""The seed schema of the incident: the three tables with the listed columns, money as numeric."""

import pytest
from django.db import connection

from pricing.models import ModelPricing

SEED_COLUMNS = {
    "ai_model_pricing": [
        "id", "model_name", "provider", "display_name", "model_type", "input_price_per_million",
        "output_price_per_million", "monthly_budget", "enabled", "is_free", "created_at", "updated_at",
    ],
    # The incident's running counters of ai_model_pricing (total_calls, total_cost, current_month_cost)
    # are usage's, which adds to them: one owner per table (issue 14).
    "ai_usage_counter": ["id", "model_name", "total_calls", "total_cost", "current_month_cost"],
    "ai_model_usage_log": [
        "id", "model_name", "decision_id", "user_id", "prompt_tokens", "completion_tokens", "cost",
        "response_time", "success", "error_message", "purpose", "timestamp",
    ],
    "ai_budget_alerts": [
        "id", "model_name", "alert_type", "alert_level", "current_cost", "budget_limit", "usage_percentage",
        "message", "is_resolved", "created_at",
    ],
}  # fmt: skip

MONEY_COLUMNS = {
    "ai_model_pricing": ["input_price_per_million", "output_price_per_million", "monthly_budget"],
    "ai_usage_counter": ["total_cost", "current_month_cost"],
    "ai_model_usage_log": ["cost"],
    "ai_budget_alerts": ["current_cost", "budget_limit"],
}  # fmt: skip


def _columns(table: str) -> dict[str, tuple[str, int | None, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, character_maximum_length, is_nullable "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
            [table],
        )
        return {name: (data_type, length, nullable) for name, data_type, length, nullable in cursor.fetchall()}


@pytest.mark.django_db
@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
def test_seed_tables_have_the_listed_columns(table):
    columns = _columns(table)
    assert columns, f"{table} does not exist"
    missing = [c for c in SEED_COLUMNS[table] if c not in columns]
    assert missing == []


@pytest.mark.django_db
@pytest.mark.parametrize(("table", "column"), [(t, c) for t, cs in MONEY_COLUMNS.items() for c in cs])
def test_money_is_numeric_never_float(table, column):
    assert _columns(table)[column][0] == "numeric"


@pytest.mark.django_db
def test_lengths_and_nullability_follow_the_report():
    usage = _columns("ai_model_usage_log")
    assert usage["model_name"][1] == 100
    assert usage["decision_id"][1] == 100
    assert usage["purpose"][1] == 100
    assert usage["user_id"][2] == "YES"
    assert usage["timestamp"][0] == "timestamp with time zone"
    pricing = _columns("ai_model_pricing")
    assert (pricing["provider"][1], pricing["display_name"][1], pricing["model_type"][1]) == (50, 100, 50)
    alerts = _columns("ai_budget_alerts")
    assert (alerts["alert_type"][1], alerts["alert_level"][1]) == (50, 20)


@pytest.mark.django_db
def test_usage_log_indexes_from_the_report():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "ai_model_usage_log")
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
    assert {("model_name",), ("decision_id",)} <= indexed
    # The partitioned log's primary key (timestamp, id) is its timestamp index.
    primary_keys = [c["columns"] for c in constraints.values() if c["primary_key"]]
    assert primary_keys == [["timestamp", "id"]]


@pytest.mark.django_db
def test_model_name_is_unique_in_pricing():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "ai_model_pricing")
    assert any(c["unique"] and c["columns"] == ["model_name"] for c in constraints.values())


@pytest.mark.django_db
def test_nine_seed_models_with_published_prices_and_currency():
    rows = list(ModelPricing.objects.order_by("model_name"))
    assert len(rows) == 9
    names = {r.model_name for r in rows}
    assert {
        "deepseek-chat",
        "deepseek-reasoner",
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
    } <= names
    assert any(name.startswith("qwen") for name in names)
    for row in rows:
        assert row.currency == "USD"
        assert row.input_price_per_million > 0
        assert row.output_price_per_million >= row.input_price_per_million
        versions = list(row.price_versions.all())
        assert len(versions) == 1
        assert versions[0].effective_to is None
        assert versions[0].input_price_per_million == row.input_price_per_million
        assert versions[0].source
