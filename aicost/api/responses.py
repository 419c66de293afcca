"""The response envelope every aicost endpoint uses: {"success": true, "data": ...}."""

from rest_framework import status as http_status
from rest_framework.response import Response


def success_response(data, *, status: int = http_status.HTTP_200_OK) -> Response:
    return Response({"success": True, "data": data}, status=status)


def error_body(*, code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"success": False, "error": error}
