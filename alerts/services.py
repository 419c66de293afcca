"""Writes of alerts: thresholds crossed become alert rows, once per budget, period and threshold."""

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from aicost.money import percent_of
from aicost.timeutils import month_start
from alerts.models import AlertLevel, AlertStatus, AlertType, BudgetAlert
from pricing.models import ModelPricing

DEFAULT_THRESHOLDS: tuple[tuple[int, str], ...] = (
    (50, AlertLevel.INFO),
    (80, AlertLevel.WARNING),
    (100, AlertLevel.CRITICAL),
)


def _thresholds() -> tuple[tuple[int, str], ...]:
    return getattr(settings, "AICOST_ALERT_THRESHOLDS", DEFAULT_THRESHOLDS)


def _crossed_alerts(*, pricing: ModelPricing, period_start) -> list[BudgetAlert]:
    spent: Decimal = pricing.current_month_cost
    budget: Decimal = pricing.monthly_budget
    used = percent_of(spent, budget)
    return [
        BudgetAlert(
            model_name=pricing.model_name,
            alert_type=AlertType.MODEL_BUDGET,
            alert_level=level,
            current_cost=spent,
            budget_limit=budget,
            usage_percentage=used,
            threshold_percent=threshold,
            period_start=period_start,
            message=(
                f"{pricing.display_name or pricing.model_name} has used {used}% of its monthly budget "
                f"({spent} of {budget} {pricing.currency}); threshold {threshold}% crossed."
            ),
        )
        for threshold, level in _thresholds()
        if used >= threshold
    ]


@transaction.atomic
def budget_alerts_evaluate(*, model_names: Collection[str], now: datetime) -> list[BudgetAlert]:
    """Create the alerts for thresholds the models' monthly spend has crossed. The unique
    constraint (type, model, period, threshold) makes this idempotent under concurrency."""
    period_start = month_start(now)
    candidates: list[BudgetAlert] = []
    priced = ModelPricing.objects.filter(model_name__in=model_names, monthly_budget__gt=0, current_month=period_start)
    for pricing in priced:
        candidates += _crossed_alerts(pricing=pricing, period_start=period_start)
    if candidates:
        BudgetAlert.objects.bulk_create(candidates, ignore_conflicts=True)
    return candidates


@transaction.atomic
def budget_alerts_resolve(*, alert_ids: Collection[int]) -> int:
    return BudgetAlert.objects.filter(pk__in=alert_ids, is_resolved=False).update(
        is_resolved=True, status=AlertStatus.RESOLVED
    )
