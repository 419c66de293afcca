"""Model-name matching (aliases, prefixes, regular expressions), the log's two names, is_free and
enabled by the call's moment, and no price version starting in the past (issue 15, points 4, 8b, 8e)."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ingest.services import usage_record, usage_record_batch
from pricing.matching import (
    RULE_ALIAS,
    RULE_AMBIGUOUS,
    RULE_MODEL_NAME,
    RULE_PREFIX,
    RULE_REGEX,
    RULE_UNMATCHED,
    NameMatcher,
)
from pricing.models import ModelPricing, PatternKind
from pricing.selectors import price_book_for_models, pricing_match
from pricing.services import (
    model_name_patterns_set,
    model_pricing_create,
    model_pricing_set_enabled,
    model_pricing_set_prices,
    model_pricing_update,
)
from tests.api_helpers import exact_json
from tests.sqlite_process import sqlite_python
from usage.models import CostSource, UsageCounter, UsageLog, UsageRollupHour
from usage.rollups import rollups_compact
from usage.services import UsageRecordInput

EXACT, PREFIX, REGEX = PatternKind.EXACT, PatternKind.PREFIX, PatternKind.REGEX


# --- Precedence (pure) ------------------------------------------------------------------------------


def _matcher() -> NameMatcher:
    return NameMatcher(
        model_names=["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "openai/special"],
        patterns=[
            ("gpt-4o", EXACT, "gpt-4o-latest"),
            ("gpt-4o", PREFIX, "openai/gpt-4o"),
            ("gpt-4o-mini", PREFIX, "openai/gpt-4o-mini"),
            ("gpt-4o", REGEX, r"gpt-4o-\d{4}-\d{2}-\d{2}"),
            ("gpt-4o-mini", REGEX, r"gpt-4o-mini-\d{4}-\d{2}-\d{2}"),
            ("claude-sonnet-4-5", REGEX, r"(vertex_ai/)?claude-sonnet-4-5(@\d+)?"),
            ("claude-sonnet-4-5", REGEX, r"claude-.*"),
            ("gpt-4o-mini", REGEX, r".*-mini"),
            ("gpt-4o", REGEX, r"x-.*"),
            ("gpt-4o-mini", REGEX, r"x-.*"),
            ("gpt-4o", PREFIX, "openai/"),
        ],
    )


@pytest.mark.parametrize(
    ("name", "model", "rule", "pattern"),
    [
        ("gpt-4o", "gpt-4o", RULE_MODEL_NAME, ""),
        # Its own model_name wins over a longer prefix of another model ("openai/" is gpt-4o's).
        ("openai/special", "openai/special", RULE_MODEL_NAME, ""),
        ("gpt-4o-latest", "gpt-4o", RULE_ALIAS, "gpt-4o-latest"),
        # The longest prefix decides: openai/gpt-4o-mini... is the mini, not gpt-4o.
        ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini", RULE_PREFIX, "openai/gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o", RULE_PREFIX, "openai/gpt-4o"),
        ("openai/o3", "gpt-4o", RULE_PREFIX, "openai/"),
        # Expressions match the whole name only.
        ("gpt-4o-2024-08-06", "gpt-4o", RULE_REGEX, r"gpt-4o-\d{4}-\d{2}-\d{2}"),
        ("vertex_ai/claude-sonnet-4-5@20250929", "claude-sonnet-4-5", RULE_REGEX, ""),
        ("gpt-4o-2024-08-06-preview", None, RULE_UNMATCHED, ""),
        ("llama-local", None, RULE_UNMATCHED, ""),
    ],
)
def test_precedence_model_name_alias_longest_prefix_regex(name, model, rule, pattern):
    match = _matcher().match(name)
    assert (match.model_name, match.rule) == (model, rule)
    if pattern:
        assert match.pattern == pattern


def test_expressions_of_two_models_matching_is_ambiguous_and_names_both():
    matcher = _matcher()
    # claude-.* (claude-sonnet-4-5) and .*-mini (gpt-4o-mini) both match.
    match = matcher.match("claude-mini")
    assert (match.model_name, match.rule, match.clashes) == (None, RULE_AMBIGUOUS, ("claude-sonnet-4-5", "gpt-4o-mini"))
    assert "'claude-sonnet-4-5', 'gpt-4o-mini'" in match.describe()
    assert matcher.match("x-1").clashes == ("gpt-4o", "gpt-4o-mini")
    # Two expressions of one model are no clash.
    assert matcher.match("claude-sonnet-4-5@1").model_name == "claude-sonnet-4-5"


# --- Collisions refused on save -----------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


def _model(name: str) -> ModelPricing:
    return ModelPricing.objects.get(model_name=name)


@pytestmark_db
@pytest.mark.parametrize(
    ("owner", "patterns", "message"),
    [
        ("gpt-4o", [(EXACT, "gpt-4o-mini")], "Alias 'gpt-4o-mini' is the model name of another priced model."),
        ("gpt-4o", [(EXACT, "gpt-4o")], "Alias 'gpt-4o' is the model's own name."),
        ("gpt-4o-mini", [(EXACT, "chatgpt-4o-latest")], "Alias 'chatgpt-4o-latest' is already an alias of 'gpt-4o'."),
        ("gpt-4o-mini", [(PREFIX, "openai/gpt-4o")], "Prefix 'openai/gpt-4o' is already held by 'gpt-4o'."),
        ("gpt-4o", [(REGEX, "gpt-4o-(")], "Regular expression 'gpt-4o-(' does not compile"),
        ("gpt-4o", [(PREFIX, "a"), (PREFIX, " a ")], "Prefix 'a' is listed twice."),
        ("gpt-4o", [(PREFIX, "  ")], "A pattern cannot be blank."),
    ],
)
def test_alias_and_prefix_collisions_and_bad_expressions_are_refused(owner, patterns, message):
    model_name_patterns_set(
        pricing=_model("gpt-4o"), patterns=[(EXACT, "chatgpt-4o-latest"), (PREFIX, "openai/gpt-4o")]
    )
    before = list(_model(owner).name_patterns.values_list("kind", "pattern"))
    with pytest.raises(ValidationError) as raised:
        model_name_patterns_set(pricing=_model(owner), patterns=patterns)
    assert any(text.startswith(message) for text in raised.value.messages), raised.value.messages
    assert list(_model(owner).name_patterns.values_list("kind", "pattern")) == before


@pytestmark_db
def test_a_model_may_not_be_named_or_renamed_as_another_models_alias():
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[(EXACT, "chatgpt-4o-latest")])
    with pytest.raises(ValidationError, match="already an alias of 'gpt-4o'"):
        model_pricing_create(
            model_name="chatgpt-4o-latest",
            provider="OpenAI",
            display_name="x",
            model_type="chat",
            currency="USD",
            input_price_per_million=Decimal(1),
            output_price_per_million=Decimal(1),
        )
    with pytest.raises(ValidationError, match="already an alias of 'gpt-4o'"):
        model_pricing_update(pricing=_model("gpt-4.1"), data={"model_name": "chatgpt-4o-latest"})
    assert not ModelPricing.objects.filter(model_name="chatgpt-4o-latest").exists()


# --- Priced through the API and usage_record, both names kept ------------------------------------------


def _gateway_patterns() -> None:
    model_name_patterns_set(
        pricing=_model("gpt-4o"), patterns=[(PREFIX, "openai/gpt-4o"), (REGEX, r"gpt-4o-\d{4}-\d{2}-\d{2}")]
    )
    model_name_patterns_set(pricing=_model("gpt-4o-mini"), patterns=[(PREFIX, "openai/gpt-4o-mini")])
    model_name_patterns_set(pricing=_model("claude-sonnet-4-5"), patterns=[(PREFIX, "vertex_ai/claude-sonnet-4-5")])
    model_name_patterns_set(pricing=_model("gemini-2.5-flash"), patterns=[(EXACT, "models/gemini-2.5-flash")])


@pytestmark_db
def test_snapshot_and_gateway_names_are_priced_through_the_api_and_both_names_stored(writer):
    _gateway_patterns()
    sent = [
        "gpt-4o-2024-08-06",
        "openai/gpt-4o",
        "openai/gpt-4o-mini-2024-07-18",
        "vertex_ai/claude-sonnet-4-5@20250929",
    ]
    sent.append("models/gemini-2.5-flash")
    records = [{"model_name": name, "prompt_tokens": 1_000_000, "completion_tokens": 0} for name in sent]
    response = writer.post("/api/v1/usage/", records, format="json")
    assert response.status_code == 201, response.content
    data = exact_json(response)["data"]
    assert data["unpriced"] == 0
    priced_as = ["gpt-4o", "gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"]
    assert [(r["sent_model_name"], r["model_name"]) for r in data["records"]] == list(zip(sent, priced_as, strict=True))
    assert [Decimal(r["cost"]) for r in data["records"]] == [
        Decimal("2.50"),
        Decimal("2.50"),
        Decimal("0.15"),
        Decimal("3.00"),
        Decimal("0.30"),
    ]
    stored = UsageLog.objects.order_by("id")
    assert [(log.sent_model_name, log.model_name) for log in stored] == list(zip(sent, priced_as, strict=True))
    assert all(log.price_version.pricing.model_name == log.model_name for log in stored)


@pytestmark_db
def test_usage_record_prices_a_snapshot_and_counts_it_under_the_priced_model(reader):
    _gateway_patterns()
    log = usage_record(model_name="gpt-4o-2024-08-06", prompt_tokens=1_000_000, completion_tokens=0)
    assert (log.model_name, log.sent_model_name, log.cost_source) == ("gpt-4o", "gpt-4o-2024-08-06", "computed")
    usage_record(model_name="openai/gpt-4o", prompt_tokens=1_000_000, completion_tokens=0, purpose="p")
    usage_record(model_name="my-finetune", prompt_tokens=10, completion_tokens=0)
    counter = UsageCounter.objects.get(model_name="gpt-4o")
    assert (counter.total_calls, counter.total_cost) == (2, Decimal("5.00"))
    assert not UsageCounter.objects.filter(model_name="gpt-4o-2024-08-06").exists()
    rollups_compact()
    assert UsageRollupHour.objects.get(model_name="gpt-4o").calls == 2
    assert UsageRollupHour.objects.get(model_name="my-finetune").unpriced_calls == 1
    platforms = {p["model_name"]: p for p in reader.get("/api/v1/ai-platforms/stats").json()["data"]["platforms"]}
    assert set(platforms) == {"gpt-4o", "my-finetune"}
    assert (platforms["gpt-4o"]["calls"], Decimal(platforms["gpt-4o"]["cost"])) == (2, Decimal("5.00"))
    assert platforms["gpt-4o"]["provider"] == "OpenAI"
    # Filtering by the priced model finds the snapshot's call; the raw log's read (purpose) shows the priced model.
    assert reader.get("/api/v1/ai-platforms/stats", {"model": "gpt-4o"}).json()["data"]["summary"]["total_calls"] == 2
    by_purpose = reader.get("/api/v1/ai-platforms/stats", {"purpose": "p"}).json()["data"]["platforms"]
    assert [(p["model_name"], p["calls"]) for p in by_purpose] == [("gpt-4o", 1)]


@pytestmark_db
def test_an_ambiguous_name_stays_unpriced_under_the_name_sent():
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[(REGEX, "gpt-.*")])
    model_name_patterns_set(pricing=_model("gpt-4.1"), patterns=[(REGEX, ".*-preview")])
    log = usage_record(model_name="gpt-5-preview", prompt_tokens=10, completion_tokens=0)
    assert (log.model_name, log.sent_model_name, log.cost, log.cost_source) == (
        "gpt-5-preview",
        "gpt-5-preview",
        None,
        CostSource.UNPRICED,
    )
    assert pricing_match(name="gpt-5-preview").clashes == ("gpt-4.1", "gpt-4o")
    assert usage_record(model_name="gpt-5", prompt_tokens=10, completion_tokens=0).model_name == "gpt-4o"


@pytestmark_db
def test_the_price_book_resolves_a_batch_in_one_query():
    _gateway_patterns()
    names = ["gpt-4o-2024-08-06", "openai/gpt-4o-mini-x", "models/gemini-2.5-flash", "deepseek-chat", "nothing"]
    with CaptureQueriesContext(connection) as queries:
        book = price_book_for_models(model_names=names)
    assert len(queries) == 1
    resolved = {name: book.resolve(name).model_name for name in names}
    assert resolved == {
        "gpt-4o-2024-08-06": "gpt-4o",
        "openai/gpt-4o-mini-x": "gpt-4o-mini",
        "models/gemini-2.5-flash": "gemini-2.5-flash",
        "deepseek-chat": "deepseek-chat",
        "nothing": None,
    }
    assert book.pricing("gpt-4o").model_name == "gpt-4o"
    assert book.versions("gpt-4o-mini")[0].pricing.model_name == "gpt-4o-mini"
    assert "claude-sonnet-4-5" not in book.pricing_by_model  # A prefix no name starts with is not loaded.


# --- is_free and enabled by the call's moment --------------------------------------------------------


@pytestmark_db
def test_a_call_while_free_costs_zero_and_records_the_version():
    pricing = _model("deepseek-chat")
    before = timezone.now() - timedelta(minutes=5)
    paid = usage_record(model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0, timestamp=before)
    model_pricing_update(pricing=pricing, data={"is_free": True})
    free_version = pricing.price_versions.get(effective_to__isnull=True)
    assert free_version.is_free
    free = usage_record(model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0)
    late = usage_record(model_name="deepseek-chat", prompt_tokens=1_000_000, completion_tokens=0, timestamp=before)
    assert (paid.cost, late.cost) == (Decimal("0.28"), Decimal("0.28"))  # Before it became free.
    assert (free.cost, free.cost_source, free.price_version_id) == (Decimal(0), CostSource.COMPUTED, free_version.pk)
    assert pricing.price_versions.count() == 2


@pytestmark_db
def test_a_late_call_from_before_the_model_was_disabled_is_priced():
    before = timezone.now() - timedelta(minutes=5)
    assert model_pricing_set_enabled(model_names=["gpt-4o-mini"], enabled=False) == 1
    versions = list(_model("gpt-4o-mini").price_versions.order_by("effective_from"))
    assert [(v.enabled, v.effective_to is None) for v in versions] == [(True, False), (False, True)]
    late = usage_record(model_name="gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=0, timestamp=before)
    now = usage_record(model_name="gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=0)
    assert (late.cost, late.cost_source) == (Decimal("0.15"), CostSource.COMPUTED)
    assert (now.cost, now.cost_source, now.price_version_id) == (None, CostSource.UNPRICED, versions[1].pk)
    model_pricing_set_enabled(model_names=["gpt-4o-mini"], enabled=True)
    again = usage_record(model_name="gpt-4o-mini", prompt_tokens=1_000_000, completion_tokens=0)
    assert again.cost == Decimal("0.15")
    assert _model("gpt-4o-mini").price_versions.count() == 3


# --- No back-dated versions ---------------------------------------------------------------------------


@pytestmark_db
def test_a_price_version_starting_in_the_past_is_refused_unless_allowed():
    pricing = _model("deepseek-chat")
    past = timezone.now() - timedelta(hours=1)
    prices = {
        "input_price_per_million": Decimal(1),
        "output_price_per_million": Decimal(2),
        "cached_input_price_per_million": None,
    }
    with pytest.raises(ValidationError) as raised:
        model_pricing_set_prices(pricing=pricing, effective_from=past, **prices)
    assert "effective_from" in raised.value.message_dict
    assert "cannot start in the past" in raised.value.message_dict["effective_from"][0]
    assert pricing.price_versions.count() == 1
    with pytest.raises(ValidationError, match="cannot start in the past"):
        model_pricing_create(
            model_name="new-model",
            provider="OpenAI",
            display_name="x",
            model_type="chat",
            currency="USD",
            effective_from=past,
            input_price_per_million=Decimal(1),
            output_price_per_million=Decimal(1),
        )
    # What usage's repricing passes, after checking the stored calls in the span.
    allowed = model_pricing_set_prices(pricing=pricing, effective_from=past, allow_past=True, **prices)
    assert (allowed.effective_from, allowed.input_price_per_million) == (past, Decimal(1))
    later = timezone.now() + timedelta(hours=1)
    future = model_pricing_set_prices(pricing=pricing, effective_from=later, **{**prices, "input_price_per_million": 3})
    assert (future.effective_from, future.input_price_per_million) == (later, Decimal(3))


@pytestmark_db
def test_pricing_import_refuses_a_past_effective_from(tmp_path):
    price_map = tmp_path / "map.json"
    price_map.write_text(
        '{"gpt-4o": {"litellm_provider": "openai", "mode": "chat", '
        '"input_cost_per_token": 0.000003, "output_cost_per_token": 0.00001}}'
    )
    with pytest.raises(CommandError, match="cannot start in the past"):
        call_command("pricing_import", str(price_map), "--apply", "--effective-from", "2020-01-01T00:00:00+00:00")
    assert _model("gpt-4o").price_versions.count() == 1
    call_command("pricing_import", str(price_map), "--apply")
    assert _model("gpt-4o").price_versions.count() == 2


# --- Admin: patterns inline and the tester -----------------------------------------------------------


@pytestmark_db
def test_admin_tester_says_which_model_and_rule(staff_client):
    _gateway_patterns()
    model_name_patterns_set(pricing=_model("gpt-4.1"), patterns=[(REGEX, r"gpt-4o-\d{4}.*")])
    url = reverse("admin:pricing_modelpricing_changelist")
    page = staff_client.get(url, {"test_name": "openai/gpt-4o-mini-2024-07-18"}).content.decode()
    assert "is priced as &#x27;gpt-4o-mini&#x27; (by its prefix &#x27;openai/gpt-4o-mini&#x27;)" in page
    page = staff_client.get(url, {"test_name": "gpt-4o-2024-08-06"}).content.decode()
    assert 'data-rule="ambiguous"' in page
    assert "&#x27;gpt-4.1&#x27;, &#x27;gpt-4o&#x27;" in page
    page = staff_client.get(url, {"test_name": "no-such", "provider": "OpenAI"}).content.decode()
    assert "matches no priced model" in page
    assert "gpt-4o-mini" in page  # The list's own filter still applies.
    assert "deepseek-chat" not in page


@pytestmark_db
def test_admin_inline_saves_patterns_and_shows_collisions(staff_client):
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[(PREFIX, "openai/gpt-4o")])
    pricing = _model("gpt-4o-mini")
    url = reverse("admin:pricing_modelpricing_change", args=[pricing.pk])
    page = staff_client.get(url)
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v not in (None, False)}
    management = {
        "name_patterns-TOTAL_FORMS": "1",
        "name_patterns-INITIAL_FORMS": "0",
        "price_versions-TOTAL_FORMS": "0",
        "price_versions-INITIAL_FORMS": "0",
        "tiers-TOTAL_FORMS": "0",
        "tiers-INITIAL_FORMS": "0",
    }
    refused = staff_client.post(
        url, {**data, **management, "name_patterns-0-kind": "prefix", "name_patterns-0-pattern": "openai/gpt-4o"}
    )
    assert refused.status_code == 200
    assert "Prefix &#x27;openai/gpt-4o&#x27; is already held by &#x27;gpt-4o&#x27;." in refused.content.decode()
    saved = staff_client.post(
        url, {**data, **management, "name_patterns-0-kind": "prefix", "name_patterns-0-pattern": "openai/gpt-4o-mini"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert list(pricing.name_patterns.values_list("kind", "pattern")) == [("prefix", "openai/gpt-4o-mini")]
    assert usage_record_batch(records=[UsageRecordInput(model_name="openai/gpt-4o-mini-x")])[0].model_name == (
        "gpt-4o-mini"
    )


@pytestmark_db
def test_usage_verify_names_rows_whose_version_span_excludes_them():
    pricing = _model("deepseek-chat")
    stored = usage_record(model_name="deepseek-chat", prompt_tokens=10, completion_tokens=0)
    call_command("usage_verify", stdout=StringIO(), stderr=StringIO())  # Consistent: exits 0.
    # A back-dated version (allow_past, which only repricing may pass) starting before the stored call.
    model_pricing_set_prices(
        pricing=pricing,
        input_price_per_million=Decimal(1),
        output_price_per_million=Decimal(1),
        cached_input_price_per_million=None,
        effective_from=stored.timestamp - timedelta(minutes=1),
        allow_past=True,
    )
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("usage_verify", stdout=StringIO(), stderr=err)
    assert exited.value.code == 1
    assert f"deepseek-chat: 1 call from {stored.timestamp.isoformat()}" in err.getvalue()
    assert f"point at price version {stored.price_version_id}" in err.getvalue()


SQLITE_SCRIPT = """
from decimal import Decimal
import django
django.setup()
from django.core.management import call_command
from ingest.services import usage_record
from pricing.models import ModelPricing
from pricing.services import model_name_patterns_set, model_pricing_set_enabled

call_command("migrate", verbosity=0)
model_name_patterns_set(pricing=ModelPricing.objects.get(model_name="gpt-4o"), patterns=[("prefix", "openai/gpt-4o")])
model_name_patterns_set(pricing=ModelPricing.objects.get(model_name="gpt-4o-mini"), patterns=[("regex", r"mini-.*")])
log = usage_record(model_name="openai/gpt-4o-2024-08-06", prompt_tokens=1000000, completion_tokens=0)
assert (log.model_name, log.sent_model_name, log.cost) == ("gpt-4o", "openai/gpt-4o-2024-08-06", Decimal("2.5")), log
assert usage_record(model_name="mini-x", prompt_tokens=1, completion_tokens=0).model_name == "gpt-4o-mini"
model_pricing_set_enabled(model_names=["gpt-4o"], enabled=False)
assert usage_record(model_name="openai/gpt-4o", prompt_tokens=1, completion_tokens=0).cost is None
print("ok")
"""


def test_names_match_on_sqlite_too(tmp_path):
    """SQLite (bin/dev) loads the price book through the ORM: the same matching."""
    result = sqlite_python(tmp_path / "names.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


@pytestmark_db
def test_a_changed_pattern_prices_the_next_batch_and_leaves_stored_rows_alone():
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[(PREFIX, "openai/")])
    first = usage_record(model_name="openai/x", prompt_tokens=1, completion_tokens=0)
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[])
    model_name_patterns_set(pricing=_model("gpt-4o-mini"), patterns=[(PREFIX, "openai/")])
    second = usage_record(model_name="openai/x", prompt_tokens=1, completion_tokens=0)
    assert (first.model_name, second.model_name) == ("gpt-4o", "gpt-4o-mini")
    first.refresh_from_db()
    assert first.model_name == "gpt-4o"


@pytestmark_db
def test_admin_adds_a_model_with_its_patterns(staff_client):
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[(EXACT, "taken-alias")])
    url = reverse("admin:pricing_modelpricing_add")
    data = {
        "model_name": "acme-large",
        "provider": "Acme",
        "display_name": "Acme Large",
        "model_type": "chat",
        "currency": "USD",
        "input_price_per_million": "1",
        "output_price_per_million": "2",
        "enabled": "on",
        "name_patterns-TOTAL_FORMS": "2",
        "name_patterns-INITIAL_FORMS": "0",
        "name_patterns-0-kind": "regex",
        "name_patterns-0-pattern": r"acme-large-\d+",
        "name_patterns-1-kind": "exact",
        "name_patterns-1-pattern": "taken-alias",
        "price_versions-TOTAL_FORMS": "0",
        "price_versions-INITIAL_FORMS": "0",
        "tiers-TOTAL_FORMS": "0",
        "tiers-INITIAL_FORMS": "0",
    }
    refused = staff_client.post(url, data)
    assert refused.status_code == 200
    assert "Alias &#x27;taken-alias&#x27; is already an alias of &#x27;gpt-4o&#x27;." in refused.content.decode()
    assert not ModelPricing.objects.filter(model_name="acme-large").exists()
    data["name_patterns-1-pattern"] = "acme/large"
    assert staff_client.post(url, data).status_code == 302
    created = _model("acme-large")
    assert sorted(created.name_patterns.values_list("kind", "pattern")) == [
        ("exact", "acme/large"),
        ("regex", r"acme-large-\d+"),
    ]
    assert usage_record(model_name="acme-large-7", prompt_tokens=1_000_000, completion_tokens=0).cost == Decimal(1)


@pytestmark_db
def test_budget_check_answers_for_a_snapshot_name_with_the_priced_model(reader):
    model_name_patterns_set(pricing=_model("gpt-4o"), patterns=[(REGEX, r"gpt-4o-\d{4}-\d{2}-\d{2}")])
    data = reader.get("/api/v1/budget/check", {"model": "gpt-4o-2024-08-06"}).json()["data"]
    assert data["model"] == "gpt-4o"
    assert reader.get("/api/v1/budget/check", {"model": "gpt-4o-2024"}).status_code == 404
