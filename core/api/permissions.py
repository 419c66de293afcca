from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from core.api.authentication import METRICS_TOKEN


def is_staff(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class HasMetricsToken(BasePermission):
    """A scraper that authenticated with the AICOST_METRICS_TOKEN bearer token."""

    message = _("Metrics need a staff login, an API key with read scope, or the metrics bearer token.")

    def has_permission(self, request, view) -> bool:
        return request.auth is METRICS_TOKEN
