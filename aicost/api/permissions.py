from rest_framework.permissions import BasePermission

from aicost.api.authentication import METRICS_TOKEN
from usage.models import ApiKey


def _is_staff(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def _api_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class CanReadStats(BasePermission):
    """Staff session, or an API key with read scope."""

    message = "Reading needs a staff login or an API key with read scope."

    def has_permission(self, request, view) -> bool:
        key = _api_key(request)
        return _is_staff(request) or bool(key and key.can_read)


class CanWriteUsage(BasePermission):
    """Staff session, or an API key with write-usage scope."""

    message = "Recording usage needs a staff login or an API key with write_usage scope."

    def has_permission(self, request, view) -> bool:
        key = _api_key(request)
        return _is_staff(request) or bool(key and key.can_write_usage)


class HasMetricsToken(BasePermission):
    """A scraper that authenticated with the AICOST_METRICS_TOKEN bearer token."""

    message = "Metrics need a staff login, an API key with read scope, or the metrics bearer token."

    def has_permission(self, request, view) -> bool:
        return request.auth is METRICS_TOKEN
