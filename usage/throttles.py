"""Per-key rate limits (ApiKey.ingest_records_per_minute, ApiKey.read_requests_per_minute), the one
DRF throttle of every API view (REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES). The count is shared by
every worker and process: a row per key and kind in the database (usage.keys.api_key_rate_take), from
which each process leases a share of the limit (usage.keys.api_key_rate_admit), so most requests under
a limit run no statement.

A view that stores usage records says how many a request carries with `ingest_records(request)`
(the usage API: its records; OTLP: its spans); those count against the ingest limit, before anything
is stored, so a batch over the limit is refused whole. Every other request of a key counts as one
read. Requests without an API key (staff sessions, the metrics token), and keys without the limit,
are never counted: no query at all."""

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from usage.keys import api_key_rate_admit
from usage.models import ApiKey, ApiKeyRateKind


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        if api_key is None:
            return True
        count_records = getattr(view, "ingest_records", None)
        if count_records is not None:
            limit, kind = api_key.ingest_records_per_minute, ApiKeyRateKind.INGEST
            if limit is None:
                return True
            amount = count_records(request)
            if amount == 0:
                return True
        else:
            limit, kind, amount = api_key.read_requests_per_minute, ApiKeyRateKind.READ, 1
            if limit is None:
                return True
        decision = api_key_rate_admit(api_key_id=api_key.pk, kind=kind, amount=amount, limit=limit, now=timezone.now())
        if decision.allowed:
            return True
        wait = decision.retry_after
        raise exceptions.Throttled(wait=wait, detail=_refusal(kind, amount, limit, wait))


def _refusal(kind: str, amount: int, limit: int, retry_after: int) -> str:
    if kind == ApiKeyRateKind.READ:
        message = _("This API key may make %(limit)s read requests per minute; retry in %(seconds)s s.")
        return message % {"limit": limit, "seconds": retry_after}
    if amount > limit:
        message = _(
            "This API key may record %(limit)s records per minute and this request has %(count)s: "
            "send smaller batches. Nothing was stored."
        )
        return message % {"limit": limit, "count": amount}
    message = _(
        "This API key may record %(limit)s records per minute; this request's %(count)s would exceed it. "
        "Nothing was stored; retry in %(seconds)s s."
    )
    return message % {"limit": limit, "count": amount, "seconds": retry_after}
