"""API key authentication: `Authorization: Api-Key <key>` (or `X-API-Key: <key>`)."""

from django.contrib.auth.models import AnonymousUser
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
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

    accepted = format_lazy(_("`Authorization: {keyword} <key>`, the `X-API-Key: <key>` header"), keyword=KEYWORD)

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


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """The API-key scheme in the OpenAPI schema (drf-spectacular registers subclasses on import)."""

    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>` (or the header `X-API-Key: <key>`).",
        }
