"""The response envelope every aicost endpoint uses: {"success": true, "data": ...}."""

from rest_framework import serializers
from rest_framework import status as http_status
from rest_framework.response import Response


def success_response(data, *, status: int = http_status.HTTP_200_OK) -> Response:
    return Response({"success": True, "data": data}, status=status)


def error_body(*, code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"success": False, "error": error}


class ErrorSerializer(serializers.Serializer):
    """The `error` object of every failed request (documentation only: error_body builds it)."""

    class Meta:
        ref_name = "Error"

    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_authenticated.")
    message = serializers.CharField()
    field = serializers.CharField(required=False, help_text="Path of the first invalid field, e.g. records[3].cost.")
    fields = serializers.DictField(required=False, help_text="Every invalid field, as DRF reports them.")
    missing = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Tables or columns the database lacks (503)."
    )


class ErrorResponseSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ErrorResponse"

    success = serializers.BooleanField(help_text="Always false.")
    error = ErrorSerializer()
