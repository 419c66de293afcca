"""Pages (admin, not the API) that hit a missing table or a lost database answer 503, not 500, in
the admin's look: header, breadcrumbs and, where it can still be rendered, the nav sidebar."""

import logging

from django.contrib import admin
from django.db import DatabaseError
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from core.db_errors import database_unavailable, missing_schema_object
from schemaguard.guard import REPAIR_COMMAND

logger = logging.getLogger("aicost.schema")
TEMPLATE = "aicost/database_unavailable.html"


class DatabaseErrorPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        missing = missing_schema_object(exception)
        if missing is None and not database_unavailable(exception):
            return None
        logger.error("%s on %s: %s", "schema unhealthy" if missing else "database unavailable", request.path, exception)
        page = {
            "missing": missing,
            "repair_command": REPAIR_COMMAND,
            "title": _("Database schema broken") if missing else _("Database unavailable"),
        }
        response = _rendered_page(request, page, with_database=missing is not None)
        response["Retry-After"] = "30"
        return response


def _rendered_page(request, page: dict, *, with_database: bool) -> TemplateResponse:
    """With the database up (a missing table), the full admin context; if reading it fails too, or
    the database is down, the admin's look without the parts that read it. Never a 500."""
    if with_database:
        try:
            context = admin.site.each_context_safely(request)
            return TemplateResponse(request, TEMPLATE, {**context, **page}, status=503).render()
        except DatabaseError as error:  # Rendering read what each_context left lazy (user, messages).
            logger.warning("the error page's admin context failed too (%s); rendering it without the database", error)
    context = admin.site.each_context_without_database()
    return TemplateResponse(request, TEMPLATE, {**context, **page}, status=503).render()
