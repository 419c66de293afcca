"""Reads of usage data and API keys."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, Sum
from django.db.models.functions import Coalesce

from aicost.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS, ZERO, quantize_cost
from usage.models import ApiKey, UsageLog, UsageRollupDaily

COST_FIELD = DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES)


def api_key_hash(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is safe here (no dictionary to guess from).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_get_active(*, raw_key: str) -> ApiKey | None:
    if not raw_key:
        return None
    return ApiKey.objects.filter(key_hash=api_key_hash(raw_key), revoked_at__isnull=True).first()


@dataclass(frozen=True)
class ModelTotals:
    calls: int
    cost: Decimal
    month_cost: Decimal


NO_USAGE = ModelTotals(calls=0, cost=ZERO, month_cost=ZERO)


def usage_totals_by_model(*, month_from: datetime, month_to: datetime) -> dict[str, ModelTotals]:
    """Calls and cost per model over the whole log, and cost within [month_from, month_to)."""
    in_month = Q(timestamp__gte=month_from, timestamp__lt=month_to)
    rows = UsageLog.objects.values("model_name").annotate(
        n_calls=Count("id"),
        sum_cost=Coalesce(Sum("cost"), ZERO, output_field=COST_FIELD),
        sum_month_cost=Coalesce(Sum("cost", filter=in_month), ZERO, output_field=COST_FIELD),
    )
    return {
        # SQLite sums decimals as floats; rounding to the stored precision makes them exact again.
        row["model_name"]: ModelTotals(
            calls=row["n_calls"], cost=quantize_cost(row["sum_cost"]), month_cost=quantize_cost(row["sum_month_cost"])
        )
        for row in rows
    }


def unpriced_calls_by_model() -> dict[str, int]:
    """Calls stored without a cost, per model, all time, from the daily rollups (a row per model and
    day, so far fewer rows than the log). Models without a price entry appear here too."""
    rows = (
        UsageRollupDaily.objects.values("model_name")
        .annotate(unpriced=Sum("unpriced_calls"))
        .filter(unpriced__gt=0)
        .values_list("model_name", "unpriced")
    )
    return dict(rows)
