"""The one DRF exception handler: every error is {"success": false, "error": {"code", "message"}}."""

import logging

import psycopg
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.api.authentication import accepted_credentials, challenges, offered_scheme
from core.api.responses import error_body
from core.db_errors import REPAIR_COMMAND, database_unavailable, missing_schema_object

logger = logging.getLogger("aicost.api")


class ApiError(exceptions.APIException):
    """A 4xx the service raises itself, with a stable machine-readable code."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, status_code: int | None = None, field: str | None = None
    ):
        super().__init__(detail=message, code=code or self.default_code)
        if status_code is not None:
            self.status_code = status_code
        self.field = field


def _child_path(path: str, key) -> str:
    if key == "non_field_errors":
        return path
    if isinstance(key, int):  # A list serializer's errors are keyed by item index.
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _first_error(detail, path: str = "") -> tuple[str, str] | None:
    """The first error in DRF's nested detail, with its field path, e.g. ("records[3].prompt_tokens", "...")."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            child_path = _child_path(path, key)
            found = _first_error(value, child_path)
            if found:
                return found
        return None
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            item_path = f"{path}[{index}]" if isinstance(item, dict | list) and item else path
            found = _first_error(item, item_path)
            if found:
                return found
        return None
    return (path, str(detail))


def _first_message(detail) -> str:
    found = _first_error(detail)
    if found is None:
        return _("Invalid input.")
    path, message = found
    return f"{path}: {message}" if path else message


def _validation_body(exc: exceptions.ValidationError) -> dict:
    detail = exc.detail
    body = error_body(
        code="invalid", message=_first_message(detail), fields=detail if isinstance(detail, dict) else None
    )
    found = _first_error(detail)
    if found and found[0]:
        body["error"]["field"] = found[0]
    return body


def _database_error_response(exc) -> Response | None:
    missing = missing_schema_object(exc)
    if missing is not None:
        logger.error("schema unhealthy: %s is missing (%s)", missing, exc)
        body = error_body(
            code="schema_unhealthy",
            message=_(
                "The database schema is broken: %(missing)s is missing. "
                "An operator must run `%(repair)s`; see /api/v1/admin/health/database."
            )
            % {"missing": missing, "repair": REPAIR_COMMAND},
        )
        body["error"]["missing"] = [missing]
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "30"})
    if database_unavailable(exc):
        logger.error("database unavailable: %s", exc)
        body = error_body(
            code="database_unavailable",
            message=_("The database is unavailable; nothing was stored. Retry shortly."),
        )
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    return None


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):  # A body read past core.middleware.RequestBodyMiddleware.
        exc = ApiError(
            _("The request body is larger than %(limit)s bytes; send fewer records per request.")
            % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            code="request_too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DatabaseError | psycopg.Error):  # The driver's own: a COPY bypasses Django's wrapper.
        return _database_error_response(exc)  # None: an unexpected database error stays a logged 500.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # Unexpected: Django logs it and answers 500 without a traceback.

    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc)
    else:
        code = exc.get_codes()
        message = _first_message(exc.detail)
        if isinstance(exc, exceptions.NotAuthenticated) and response.status_code == status.HTTP_401_UNAUTHORIZED:
            message = _not_authenticated_message(context["request"])
        body = error_body(code=code if isinstance(code, str) else "error", message=message)
        if isinstance(exc, ApiError) and exc.field:
            body["error"]["field"] = exc.field
    headers = _passed_on_headers(response)
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        request = context["request"]
        headers["WWW-Authenticate"] = challenges(request, request.authenticators) or headers.get("WWW-Authenticate", "")
    return Response(body, status=response.status_code, headers=headers)


def _not_authenticated_message(request) -> str:
    """Say what this endpoint accepts, and why what was sent (e.g. a bearer token) did not count."""
    accepted = accepted_credentials(request.authenticators)
    scheme = offered_scheme(request)
    offered = (
        _("The `Authorization: %(scheme)s` scheme is not accepted here.") % {"scheme": scheme}
        if scheme
        else _("Authentication credentials were not provided.")
    )
    if not accepted:
        return offered
    accepted = [str(choice) for choice in accepted]
    if len(accepted) == 1:
        choices = accepted[0]
    else:
        choices = _("%(first)s, or %(last)s") % {"first": ", ".join(accepted[:-1]), "last": accepted[-1]}
    return _("%(offered)s Send %(choices)s.") % {"offered": offered, "choices": choices}


def _passed_on_headers(response: Response) -> dict:
    return {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
