"""The per-process price book cache (pricing.selectors.price_book_cached) is never stale: every write
to a table the book reads changes the price generation (pricing.generation's triggers), and the very
next batch in the same process prices with what the database holds; the schema guard reports a
missing trigger. Real PostgreSQL here; tests/test_price_book_cache_sqlite.py does the same on SQLite."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse

from ingest.services import usage_record
from pricing import selectors
from pricing.generation import TRIGGER_MISSING, WATCHED_TABLES, missing_triggers, trigger_name
from pricing.models import ModelPriceVersion, ModelPricing
from pricing.services import model_name_patterns_set, model_pricing_create, model_pricing_update
from schemaguard.guard import schema_report
from schemaguard.services import schema_repair_plan

pytestmark = pytest.mark.django_db

MILLION = 1_000_000


def _cost_of_a_million_input(name: str = "gpt-4o") -> Decimal:
    log = usage_record(model_name=name, prompt_tokens=MILLION, completion_tokens=0)
    return log.cost


def _cached_book():
    return getattr(selectors._book_cache, "book", None)


def _current_input(name: str) -> Decimal:
    return ModelPricing.objects.get(model_name=name).input_price_per_million


def test_a_warm_cache_is_reused_while_nothing_changes():
    first = _cost_of_a_million_input()
    book = _cached_book()
    assert book is not None
    assert "gpt-4o" in book.covered
    assert _cost_of_a_million_input() == first
    assert _cached_book() is book  # The same book: no price read for the second batch.


def test_an_edit_through_pricing_services_is_seen_by_the_next_batch():
    before = _current_input("gpt-4o")
    assert _cost_of_a_million_input() == before
    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    model_pricing_update(pricing=pricing, data={"input_price_per_million": before + 1})
    assert _cost_of_a_million_input() == before + 1


def test_a_raw_sql_update_is_seen_by_the_next_batch():
    warm = _cost_of_a_million_input()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ai_model_price_version SET input_price_per_million = input_price_per_million + 7 "
            "WHERE effective_to IS NULL AND pricing_id = (SELECT id FROM ai_model_pricing WHERE model_name = %s)",
            ["gpt-4o"],
        )
    assert _cost_of_a_million_input() == warm + 7


def test_a_raw_disable_and_a_raw_alias_are_seen_by_the_next_batch():
    assert _cost_of_a_million_input() is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ai_model_price_version SET enabled = false WHERE pricing_id = "
            "(SELECT id FROM ai_model_pricing WHERE model_name = 'gpt-4o')"
        )
    assert _cost_of_a_million_input() is None
    name = "my-gateway-model"
    assert usage_record(model_name=name, prompt_tokens=1, completion_tokens=0).model_name == name  # Unknown.
    pricing = ModelPricing.objects.get(model_name="gpt-4o-mini")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ai_model_name_pattern (pricing_id, kind, pattern) VALUES (%s, 'exact', %s)", [pricing.pk, name]
        )
    log = usage_record(model_name=name, prompt_tokens=MILLION, completion_tokens=0)
    assert (log.model_name, log.cost) == ("gpt-4o-mini", pricing.input_price_per_million)


def test_an_admin_edit_is_seen_by_the_next_batch(client, staff_user):
    from tests.test_admin import _changelist_form

    assert _cost_of_a_million_input() == _current_input("gpt-4o")
    client.post(reverse("admin:login"), {"username": "staff", "password": "staff-pass-123", "next": "/admin/"})
    rows = list(ModelPricing.objects.order_by("provider", "model_name"))
    url = reverse("admin:pricing_modelpricing_changelist")
    response = client.post(url, _changelist_form(rows, {"gpt-4o": {"input_price_per_million": "9.125"}}))
    assert response.status_code == 302
    assert _cost_of_a_million_input() == Decimal("9.125")


def test_a_batch_with_a_new_model_name_loads_it():
    assert _cost_of_a_million_input("gpt-4o") is not None
    book = _cached_book()
    assert "gpt-4o-mini" not in book.covered
    assert _cost_of_a_million_input("gpt-4o-mini") == _current_input("gpt-4o-mini")
    assert {"gpt-4o", "gpt-4o-mini"} <= _cached_book().covered
    model_pricing_create(
        model_name="brand-new",
        provider="openai",
        display_name="Brand new",
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal("0.5"),
        output_price_per_million=Decimal("1"),
    )
    assert _cost_of_a_million_input("brand-new") == Decimal("0.5")


def _patterns_set(model_name: str, patterns: list[tuple[str, str]]) -> None:
    model_name_patterns_set(pricing=ModelPricing.objects.get(model_name=model_name), patterns=patterns)


def test_new_names_that_load_no_new_model_are_covered_without_reading_the_book_again():
    _patterns_set("gpt-4o", [("regex", r"gpt-4o-\d{4}-\d{2}-\d{2}")])
    assert _cost_of_a_million_input("gpt-4o") == _current_input("gpt-4o")
    book = _cached_book()
    # A dated snapshot name: no model's name, alias or prefix; gpt-4o's expression (in the book) prices it.
    assert _cost_of_a_million_input("gpt-4o-2024-08-06") == _current_input("gpt-4o")
    assert _cached_book() is book
    assert "gpt-4o-2024-08-06" in book.covered
    # The name index is read once per generation: a further new name reuses it.
    index = selectors._book_cache.name_index
    assert index.cache_key == book.cache_key
    assert _cost_of_a_million_input("gpt-4o-2025-01-31") == _current_input("gpt-4o")
    assert _cached_book() is book
    assert selectors._book_cache.name_index is index
    assert usage_record(model_name="nothing-matches-this", prompt_tokens=1, completion_tokens=0).cost is None
    assert _cached_book() is book  # An unmatched name loads nothing either.


@pytest.mark.parametrize(
    ("patterns", "sent"),
    [
        ([("exact", "mini-latest")], "mini-latest"),
        ([("prefix", "gw/mini/")], "gw/mini/eu"),
        ([], "gpt-4o-mini"),  # The model's own name.
    ],
)
def test_a_new_name_that_loads_a_model_the_book_lacks_reads_the_book_again(patterns, sent):
    _patterns_set("gpt-4o-mini", patterns)
    _patterns_set("gpt-4o", [("regex", r"gpt-4o.*")])  # Would price every gpt-4o* name, were mini missing.
    assert _cost_of_a_million_input("gpt-4o") == _current_input("gpt-4o")
    book = _cached_book()
    assert "gpt-4o-mini" not in book.pricing_by_model
    assert _cost_of_a_million_input(sent) == _current_input("gpt-4o-mini")
    assert _cached_book() is not book
    assert "gpt-4o-mini" in _cached_book().pricing_by_model


def test_a_name_index_read_after_prices_changed_is_not_used():
    usage_record(model_name="gpt-4o", prompt_tokens=1, completion_tokens=0)
    key = _cached_book().cache_key
    assert selectors._name_index_read(key) is not None
    stale = (*key[:2], key[2] - 1)  # As if a price edit had committed after the batch read its generation.
    assert selectors._name_index_read(stale) is None
    assert selectors._names_load_nothing_new(_cached_book(), {"gpt-4o-2024-08-06"}) is True
    selectors._book_cache.name_index = None
    _cached_book().cache_key = stale
    assert selectors._names_load_nothing_new(_cached_book(), {"gpt-4o-2024-08-06"}) is False


def test_an_exchange_rate_change_is_a_new_generation():
    usage_record(model_name="gpt-4o", prompt_tokens=1, completion_tokens=0)
    key = _cached_book().cache_key
    with connection.cursor() as cursor:  # A statement that touches no row still counts.
        cursor.execute("DELETE FROM ai_exchange_rate WHERE base_currency = 'XXX'")
    usage_record(model_name="gpt-4o", prompt_tokens=1, completion_tokens=0)
    assert _cached_book().cache_key != key


def test_the_guard_reports_a_dropped_trigger_and_the_repair_recreates_it():
    assert missing_triggers(connection) == []
    assert TRIGGER_MISSING not in [f.id for f in schema_report().findings]
    dropped = trigger_name("ai_model_price_version")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {dropped} ON ai_model_price_version")
    findings = [f for f in schema_report().findings if f.id == TRIGGER_MISSING]
    assert len(findings) == 1
    assert dropped in findings[0].msg
    assert findings[0].obj == "ai_model_price_version"
    plan = schema_repair_plan()
    steps = [(description, step) for description, step in plan.steps if dropped in description]
    assert steps
    assert not [r for r in plan.refused if TRIGGER_MISSING in r]
    with connection.schema_editor() as editor:
        for _description, step in steps:
            step(editor)
    assert missing_triggers(connection) == []


def test_a_disabled_trigger_is_reported_too():
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE ai_exchange_rate DISABLE TRIGGER {trigger_name('ai_exchange_rate')}")
    assert missing_triggers(connection) == [trigger_name("ai_exchange_rate")]
    assert len(WATCHED_TABLES) == 5


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_another_connection_commits_a_price_while_the_cache_is_warm():
    model_pricing_create(
        model_name="committed-model",
        provider="openai",
        display_name="Committed",
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal("2"),
        output_price_per_million=Decimal("1"),
    )
    assert _cost_of_a_million_input("committed-model") == Decimal("2")
    assert _cost_of_a_million_input("committed-model") == Decimal("2")  # Warm.
    warm = _cached_book()

    def edit() -> None:
        try:
            with transaction.atomic():
                ModelPriceVersion.objects.filter(
                    pricing__model_name="committed-model", effective_to__isnull=True
                ).update(input_price_per_million=Decimal("3.5"))
        finally:
            connections.close_all()

    editor = threading.Thread(target=edit)  # Its own connection and transaction, committed.
    editor.start()
    editor.join()
    assert _cost_of_a_million_input("committed-model") == Decimal("3.5")
    assert _cached_book() is not warm
