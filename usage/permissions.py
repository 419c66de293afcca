"""Who may read stats and record usage: a staff login, or an API key with the scope."""

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from core.api.permissions import is_staff
from usage.models import ApiKey


def sending_key(request) -> ApiKey | None:
    """The API key the request was sent with (None: a staff login)."""
    return request.auth if isinstance(request.auth, ApiKey) else None


class CanReadStats(BasePermission):
    """Staff session, or an API key with read scope."""

    message = _("Reading needs a staff login or an API key with read scope.")

    def has_permission(self, request, view) -> bool:
        key = sending_key(request)
        return is_staff(request) or bool(key and key.can_read)


class CanWriteUsage(BasePermission):
    """Staff session, or an API key with write-usage scope."""

    message = _("Recording usage needs a staff login or an API key with write_usage scope.")

    def has_permission(self, request, view) -> bool:
        key = sending_key(request)
        return is_staff(request) or bool(key and key.can_write_usage)
