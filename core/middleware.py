"""Request bodies: read whole before the rest of the stack runs, and bounded.

A client that sends its body slowly (1 KB/s) keeps one gunicorn thread reading it whatever we do; read
here, first, it does not also keep a database connection (DRF authenticates, a query, before it parses
the body). A body larger than DATA_UPLOAD_MAX_MEMORY_SIZE (AICOST_MAX_BODY_BYTES) gets a 413 JSON in
the API's error envelope, not Django's 400 page; with a Content-Length above it nothing is read at all.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils.translation import gettext as _

from core.api.responses import error_body

# Paths that read their body themselves, with their own limit (OTLP: AICOST_OTLP_MAX_BODY_BYTES).
OWN_BODY_PATHS = ("/v1/",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def request_too_large_response() -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = error_body(
        code="request_too_large",
        message=_("The request body is larger than %(limit)s bytes; send fewer records per request.")
        % {"limit": limit},
    )
    return JsonResponse(body, status=413)


class RequestBodyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in BODY_METHODS and not request.path.startswith(OWN_BODY_PATHS):
            try:
                request.body  # noqa: B018 -- read and kept (request.body, request.data read it again).
            except RequestDataTooBig:
                return request_too_large_response()
        return self.get_response(request)
