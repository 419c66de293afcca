"""OpenAPI details drf-spectacular cannot infer: the error responses (the API-key scheme is usage.authentication's)."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import status

from core.api.responses import ErrorResponseSerializer


class AicostAutoSchema(AutoSchema):
    """Documents the error responses every view can give, in the one error envelope, so a client
    (and the schema fuzz test) can rely on the status codes the schema lists. A view's own
    @extend_schema(responses=...) for a status code wins.

    _get_response_bodies is drf-spectacular's internal (pinned version): @extend_schema replaces the
    public get_response_serializers, so this is the one place that sees every operation."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        for parameter in (operation or {}).get("parameters", []):
            if parameter["in"] == "query" and not parameter.get("required"):
                # DRF reads `?status=` like a missing parameter (as a filter form sends "any").
                parameter["allowEmptyValue"] = True
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in map(str, self._error_codes()):
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorResponseSerializer, code, direction=direction)
        return responses

    def _error_codes(self) -> list[int]:
        codes = [status.HTTP_503_SERVICE_UNAVAILABLE]  # Database unreachable or schema broken.
        if self.method in ("POST", "PUT", "PATCH") or self.get_override_parameters():
            codes.append(status.HTTP_400_BAD_REQUEST)
        if self.view.get_permissions():
            codes += [status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN]
        return sorted(codes)
