"""One provider per company: a price map's route names and other spellings become the company's name,
in the import, in services (admin), and for rows stored before (migration pricing.0004)."""

import importlib
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from pricing.models import ModelPricing
from pricing.providers import provider_canonical
from pricing.services import model_pricing_create, model_pricing_update
from usage.reports import usage_filters_resolve

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("spelled", "known", "canonical"),
    [
        ("openai", [], "OpenAI"),
        ("  OpenAI ", [], "OpenAI"),
        ("vertex_ai-anthropic_models", [], "Google"),  # Claude through Vertex AI: Google bills it.
        ("bedrock_converse", [], "Amazon Web Services"),
        ("dashscope", [], "Alibaba Cloud"),
        ("acme  labs", ["Acme Labs"], "Acme Labs"),  # An unlisted name takes the priced spelling.
        ("Acme", [], "Acme"),
    ],
)
def test_a_spelling_becomes_one_provider_name(spelled, known, canonical):
    assert provider_canonical(spelled, known=known) == canonical


def _priced(model_name: str, provider: str) -> ModelPricing:
    return model_pricing_create(
        model_name=model_name,
        provider=provider,
        display_name=model_name,
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal("1"),
        output_price_per_million=Decimal("2"),
    )


def test_services_store_the_company_name_and_match_priced_providers_without_case():
    assert _priced("o-new", "openai").provider == "OpenAI"
    assert _priced("acme-1", "Acme Labs").provider == "Acme Labs"
    assert _priced("acme-2", "ACME LABS").provider == "Acme Labs"
    edited = model_pricing_update(pricing=_priced("c-new", "Anthropic"), data={"provider": "vertex_ai"})
    assert edited.provider == "Google"


def test_imported_models_join_the_seeded_provider(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        '{"gpt-new": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,'
        ' "litellm_provider": "openai", "mode": "chat"}}'
    )
    call_command("pricing_import", str(path), "--add-new", "--apply", stdout=StringIO(), stderr=StringIO())
    assert ModelPricing.objects.get(model_name="gpt-new").provider == "OpenAI"
    providers = set(ModelPricing.objects.values_list("provider", flat=True))
    assert len(providers) == len({name.lower() for name in providers})


def test_the_migration_renames_rows_stored_with_other_spellings():
    for name, provider in [("m-1", "openai"), ("m-2", "dashscope"), ("m-3", "Zeta"), ("m-4", "ZETA")]:
        ModelPricing.objects.create(
            model_name=name,
            provider=provider,
            display_name=name,
            model_type="chat",
            currency="USD",
            input_price_per_million=Decimal("1"),
            output_price_per_million=Decimal("1"),
        )
    migration = importlib.import_module("pricing.migrations.0004_providers_canonical")
    with connection.schema_editor() as schema_editor:
        migration.providers_canonical(apps, schema_editor)
    stored = dict(ModelPricing.objects.filter(model_name__startswith="m-").values_list("model_name", "provider"))
    assert stored == {"m-1": "OpenAI", "m-2": "Alibaba Cloud", "m-3": "Zeta", "m-4": "Zeta"}
    assert ModelPricing.objects.get(model_name="gpt-4o").provider == "OpenAI"


def test_the_provider_filter_takes_any_spelling_of_the_company():
    openai = {"gpt-4o", "gpt-4o-mini", "gpt-4.1"}
    for spelled in ("OpenAI", "openai", "text-completion-openai"):
        filters = usage_filters_resolve(model=None, provider=spelled, user_id=None, purpose=None)
        assert filters.model_names >= openai
        assert "claude-sonnet-4-5" not in filters.model_names
