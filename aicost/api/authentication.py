"""API key authentication: `Authorization: Api-Key <key>` (or `X-API-Key: <key>`)."""

import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from usage.selectors import api_key_get_active

KEYWORD = "Api-Key"


def _key_from_request(request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    if header:
        keyword, _sep, value = header.partition(" ")
        if keyword.lower() != KEYWORD.lower():
            return None  # Another scheme; let the next authenticator try.
        return value.strip()
    return request.headers.get("X-API-Key") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """The request's user stays anonymous; the key itself is `request.auth`."""

    def authenticate(self, request):
        raw_key = _key_from_request(request)
        if raw_key is None:
            return None
        api_key = api_key_get_active(raw_key=raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        return (AnonymousUser(), api_key)

    def authenticate_header(self, request) -> str:
        return KEYWORD


class MetricsToken:
    """request.auth of a scraper that sent the AICOST_METRICS_TOKEN bearer token."""


METRICS_TOKEN = MetricsToken()
BEARER = "Bearer"


class MetricsTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <AICOST_METRICS_TOKEN>`, for Prometheus. Needs no database, so a scrape
    works while the database is down. With the setting empty, bearer tokens are not accepted at all."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _sep, value = header.partition(" ")
        if keyword.lower() != BEARER.lower():
            return None
        expected = settings.AICOST_METRICS_TOKEN
        if not expected or not hmac.compare_digest(value.strip().encode(), expected.encode()):
            raise exceptions.AuthenticationFailed(_("Invalid metrics token."))
        return (AnonymousUser(), METRICS_TOKEN)

    def authenticate_header(self, request) -> str:
        return BEARER
