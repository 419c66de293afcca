"""Pages (admin, not the API) that hit a missing table or a lost database answer 503, not 500."""

import logging

from django.template.response import TemplateResponse

from aicost.db_errors import database_unavailable, missing_schema_object
from aicost.schema_guard import REPAIR_COMMAND

logger = logging.getLogger("aicost.schema")


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
        context = {"missing": missing, "repair_command": REPAIR_COMMAND}
        response = TemplateResponse(request, "aicost/database_unavailable.html", context, status=503)
        response["Retry-After"] = "30"
        return response.render()
