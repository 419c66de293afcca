"""Alerts in admin: bulk acknowledge/resolve, the global budget, deliveries and their retry."""

from decimal import Decimal

import pytest
from django.urls import reverse

from alerts.models import AlertDelivery, BudgetAlert, GlobalBudget
from ingest.services import usage_record
from tests.alert_helpers import WebhookReceiver, refused_url, set_budget

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts():
    set_budget("gpt-4o", "10")
    usage_record(model_name="gpt-4o", cost=Decimal("9"))
    return list(BudgetAlert.objects.order_by("threshold_percent"))


def test_bulk_acknowledge_then_resolve(staff_client, staff_user, alerts):
    url = reverse("admin:alerts_budgetalert_changelist")
    ids = [alert.pk for alert in alerts]
    staff_client.post(url, {"action": "acknowledge_alerts", "_selected_action": ids})
    assert set(BudgetAlert.objects.values_list("status", "is_resolved")) == {("acknowledged", False)}
    staff_client.post(url, {"action": "resolve_alerts", "_selected_action": ids[:1]})
    resolved = BudgetAlert.objects.get(pk=ids[0])
    assert (resolved.status, resolved.is_resolved, resolved.resolved_by) == ("resolved", True, staff_user)
    assert BudgetAlert.objects.get(pk=ids[1]).acknowledged_by == staff_user
    page = staff_client.get(url, {"status__exact": "acknowledged"}).content.decode()
    assert f"/{ids[1]}/change/" in page
    assert f"/{ids[0]}/change/" not in page


def test_alert_page_shows_its_deliveries(staff_client, settings, alerts, django_capture_on_commit_callbacks):
    settings.AICOST_ALERT_WEBHOOK_URL = refused_url()
    set_budget("gpt-4o", "5")
    with django_capture_on_commit_callbacks(execute=True):
        usage_record(model_name="gpt-4o", cost=Decimal("1"))  # 200%: the 100% threshold
    alert = BudgetAlert.objects.get(threshold_percent=100)
    page = staff_client.get(reverse("admin:alerts_budgetalert_change", args=[alert.pk])).content.decode()
    assert "refused" in page.lower()
    delivery = AlertDelivery.objects.get()
    with WebhookReceiver() as receiver:
        settings.AICOST_ALERT_WEBHOOK_URL = receiver.url
        staff_client.post(
            reverse("admin:alerts_alertdelivery_changelist"),
            {"action": "retry_now", "_selected_action": [delivery.pk]},
        )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.payloads)) == ("sent", 2, 1)
    page = staff_client.get(reverse("admin:alerts_alertdelivery_change", args=[delivery.pk])).content.decode()
    assert "Connection" in page


def test_global_budget_is_one_row_edited_in_admin(staff_client):
    add_url = reverse("admin:alerts_globalbudget_add")
    response = staff_client.post(add_url, {"monthly_budget": "250.00", "currency": "USD"})
    assert response.status_code == 302
    budget = GlobalBudget.objects.get()
    assert (budget.pk, budget.monthly_budget) == (1, Decimal("250.00"))
    assert staff_client.get(add_url).status_code == 403  # only one
    staff_client.post(
        reverse("admin:alerts_globalbudget_change", args=[1]), {"monthly_budget": "300", "currency": "USD"}
    )
    assert GlobalBudget.objects.get().monthly_budget == Decimal("300")
    assert GlobalBudget.objects.count() == 1
