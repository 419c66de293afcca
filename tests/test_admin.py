"""Admin smoke tests with a real staff login (username and password through the login form)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from alerts.models import AlertLevel, AlertType, BudgetAlert
from ingest.services import usage_record
from pricing.models import ModelPricing
from usage.models import ApiKey
from usage.selectors import api_key_get_active

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, staff_user):
    response = client.post(
        reverse("admin:login"), {"username": "staff", "password": "staff-pass-123", "next": "/admin/"}
    )
    assert response.status_code == 302
    return client


def test_login_page_rejects_a_wrong_password(client, staff_user):
    response = client.post(reverse("admin:login"), {"username": "staff", "password": "wrong"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "name",
    [
        "pricing_modelpricing",
        "pricing_modelpriceversion",
        "usage_usagelog",
        "usage_apikey",
        "alerts_budgetalert",
    ],
)
def test_every_changelist_opens(logged_in, name):
    usage_record(model_name="gpt-4o", prompt_tokens=5, completion_tokens=5)
    assert logged_in.get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_search_and_filter_prices(logged_in):
    url = reverse("admin:pricing_modelpricing_changelist")
    page = logged_in.get(url, {"q": "claude"}).content.decode()
    assert "claude-haiku-4-5" in page
    assert "gpt-4o-mini" not in page
    filtered = logged_in.get(url, {"provider": "OpenAI", "enabled__exact": "1"}).content.decode()
    assert "gpt-4o-mini" in filtered
    assert "deepseek-chat" not in filtered


def _changelist_form(rows: list[ModelPricing], edits: dict[str, dict]) -> dict:
    data = {
        "form-TOTAL_FORMS": str(len(rows)),
        "form-INITIAL_FORMS": str(len(rows)),
        "_save": "Save",
    }
    for index, row in enumerate(rows):
        values = {
            "id": row.pk,
            "input_price_per_million": row.input_price_per_million,
            "output_price_per_million": row.output_price_per_million,
            "cached_input_price_per_million": row.cached_input_price_per_million or "",
            "monthly_budget": row.monthly_budget or "",
            "enabled": "on" if row.enabled else "",
        }
        values.update(edits.get(row.model_name, {}))
        data.update({f"form-{index}-{key}": value for key, value in values.items() if value != ""})
    return data


def test_editing_a_price_in_the_list_opens_a_new_price_version(logged_in):
    url = reverse("admin:pricing_modelpricing_changelist")
    rows = list(ModelPricing.objects.order_by("provider", "model_name"))
    response = logged_in.post(url, _changelist_form(rows, {"gpt-4o": {"input_price_per_million": "2.00"}}))
    assert response.status_code == 302
    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    assert pricing.input_price_per_million == Decimal("2.00")
    versions = list(pricing.price_versions.order_by("effective_from"))
    assert [v.input_price_per_million for v in versions] == [Decimal("2.50"), Decimal("2.00")]
    assert versions[0].effective_to == versions[1].effective_from
    assert ModelPricing.objects.get(model_name="gpt-4o-mini").price_versions.count() == 1


def test_bulk_disable_and_enable(logged_in):
    url = reverse("admin:pricing_modelpricing_changelist")
    ids = list(ModelPricing.objects.filter(provider="OpenAI").values_list("pk", flat=True))
    logged_in.post(url, {"action": "disable_models", "_selected_action": ids})
    assert set(ModelPricing.objects.filter(enabled=False).values_list("provider", flat=True)) == {"OpenAI"}
    logged_in.post(url, {"action": "enable_models", "_selected_action": ids})
    assert not ModelPricing.objects.filter(enabled=False).exists()


def test_bulk_resolve_alerts(logged_in):
    alert = BudgetAlert.objects.create(
        model_name="gpt-4o",
        alert_type=AlertType.MODEL_BUDGET,
        alert_level=AlertLevel.WARNING,
        current_cost=Decimal("8"),
        budget_limit=Decimal("10"),
        usage_percentage=Decimal("80"),
        message="80% used",
        period_start="2026-11-01",
        threshold_percent=80,
    )
    url = reverse("admin:alerts_budgetalert_changelist")
    logged_in.post(url, {"action": "resolve_alerts", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.is_resolved
    assert alert.status == "resolved"


def test_creating_an_api_key_shows_it_once_and_stores_only_its_hash(logged_in):
    response = logged_in.post(
        reverse("admin:usage_apikey_add"), {"name": "ingest-bot", "scope": "write_usage"}, follow=True
    )
    api_key = ApiKey.objects.get(name="ingest-bot")
    shown = next(str(m) for m in response.context["messages"] if "copy it now" in str(m))
    raw_key = shown.split(" is ")[1].split(" ")[0]
    assert raw_key.startswith("aic_")
    assert raw_key not in api_key.key_hash
    assert api_key_get_active(raw_key=raw_key) == api_key
    assert api_key.created_by.username == "staff"


def test_the_created_message_and_the_key_list_show_the_keys_prefix(logged_in):
    response = logged_in.post(
        reverse("admin:usage_apikey_add"), {"name": "ingest-bot", "scope": "write_usage"}, follow=True
    )
    api_key = ApiKey.objects.get(name="ingest-bot")
    shown = next(str(m) for m in response.context["messages"] if "copy it now" in str(m))
    assert f"prefix aic_{api_key.prefix}_…" in shown
    raw_key = shown.split(" is ")[1].split(" ")[0]
    assert raw_key.startswith(f"aic_{api_key.prefix}_")  # The prefix is the key's own start, not secret.
    changelist = logged_in.get(reverse("admin:usage_apikey_changelist")).content.decode()
    assert "Key begins with" in changelist
    assert f"aic_{api_key.prefix}_…" in changelist
    assert raw_key not in changelist
    searched = logged_in.get(reverse("admin:usage_apikey_changelist"), {"q": api_key.prefix})
    assert searched.context["cl"].result_count == 1


def test_the_sidebar_links_the_cost_page(logged_in):
    page = logged_in.get(reverse("admin:pricing_modelpricing_changelist")).content.decode()
    sidebar = page[page.index('id="nav-sidebar"') :]
    assert 'href="/admin/ai-cost"' in sidebar
    assert "AI cost" in sidebar
    cost_page = logged_in.get("/admin/ai-cost").content.decode()
    assert 'class="app-ai-cost module current-app"' in cost_page  # Marked as where one is.


def test_the_cost_page_with_a_trailing_slash_redirects_to_it(logged_in):
    response = logged_in.get("/admin/ai-cost/?time_range=7d")
    assert response.status_code == 301
    assert response["Location"] == "/admin/ai-cost?time_range=7d"
    assert logged_in.get("/admin/ai-cost/", follow=True).status_code == 200
