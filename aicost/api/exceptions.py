"""The one DRF exception handler: every error is {"success": false, "error": {"code", "message"}}."""

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from aicost.api.responses import error_body

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


def _first_message(detail) -> str:
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        return f"{key}: {_first_message(value)}"
    return str(detail)


def _validation_body(exc: exceptions.ValidationError) -> dict:
    detail = exc.detail
    fields = detail if isinstance(detail, dict) else None
    return error_body(code="invalid", message=_first_message(detail), fields=fields)


def api_exception_handler(exc, context):
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
        body = error_body(code=code if isinstance(code, str) else "error", message=message)
        if isinstance(exc, ApiError) and exc.field:
            body["error"]["field"] = exc.field
    return Response(body, status=response.status_code, headers=_passed_on_headers(response))


def _passed_on_headers(response: Response) -> dict:
    return {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
