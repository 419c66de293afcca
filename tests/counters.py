"""Setting a model's usage counters directly (usage.models.UsageCounter), for tests that start from figures."""

from django.utils import timezone

from usage.models import UsageCounter


def counters_set(*, model_name: str, **fields) -> UsageCounter:
    counter, _created = UsageCounter.objects.update_or_create(
        model_name=model_name, defaults={**fields, "updated_at": timezone.now()}
    )
    return counter
