"""Authentication shared by every app: the metrics bearer token, and what a 401 says a client may send.
API keys are usage's (usage.authentication)."""

import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions


class MetricsToken:
    """request.auth of a scraper that sent the AICOST_METRICS_TOKEN bearer token."""


METRICS_TOKEN = MetricsToken()
BEARER = "Bearer"


class MetricsTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <AICOST_METRICS_TOKEN>`, for Prometheus. Needs no database, so a scrape
    works while the database is down. With the setting empty, bearer tokens are not accepted at all."""

    accepted = f"`Authorization: {BEARER} <AICOST_METRICS_TOKEN>`"

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


SESSION_ACCEPTED = _("a staff session (admin login; writes also send the CSRF token)")


def _offered(authenticators) -> list:
    """The endpoint's authenticators that can let a client in (no metrics token set: no bearer)."""
    return [
        authenticator
        for authenticator in authenticators
        if not (isinstance(authenticator, MetricsTokenAuthentication) and not settings.AICOST_METRICS_TOKEN)
    ]


def accepted_credentials(authenticators) -> list[str]:
    """What a client may send to this endpoint, for a 401 to spell out."""
    accepted = []
    for authenticator in _offered(authenticators):
        if isinstance(authenticator, authentication.SessionAuthentication):
            accepted.append(SESSION_ACCEPTED)
        elif getattr(authenticator, "accepted", None):
            accepted.append(authenticator.accepted)
    return accepted


def offered_scheme(request) -> str | None:
    """The scheme of the request's Authorization header ("Bearer"), if it sent one."""
    header = authentication.get_authorization_header(request).decode("latin-1").strip()
    return header.partition(" ")[0] or None


def challenges(request, authenticators) -> str:
    """Every HTTP authentication scheme the endpoint accepts, as one WWW-Authenticate value (RFC 9110
    allows a list): "Api-Key", or "Bearer, Api-Key" for /metrics with a metrics token set."""
    schemes = []
    for authenticator in _offered(authenticators):
        scheme = authenticator.authenticate_header(request)
        if scheme and scheme not in schemes:
            schemes.append(scheme)
    return ", ".join(schemes)
