"""OpenAPI details drf-spectacular cannot infer: the error responses (the API-key scheme is
usage.authentication's) and money as exact decimal numbers."""

from drf_spectacular.drainage import has_override
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers, status

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

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """drf-spectacular's mapping, with every DecimalField (money, percentages) documented as what
        core.api.renderers writes and core.api.parsers reads: `type: number, format: decimal` (its
        own mapping says `format: double`, a float), and its precision in the description."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        decimal = isinstance(field, serializers.DecimalField) and not has_override(field, "field")
        if decimal and schema.get("type") == "number":
            return decimal_schema(schema, places=field.decimal_places, request=direction == "request")
        return schema

    def _error_codes(self) -> list[int]:
        codes = [status.HTTP_503_SERVICE_UNAVAILABLE]  # Database unreachable or schema broken.
        if self.method in ("POST", "PUT", "PATCH") or self.get_override_parameters():
            codes.append(status.HTTP_400_BAD_REQUEST)
        if self.view.get_permissions():
            codes += [status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN]
            if self.view.get_throttles():  # An API key's rate limit (usage.throttles), with Retry-After.
                codes.append(status.HTTP_429_TOO_MANY_REQUESTS)
        return sorted(codes)


_NUMBER_KEYS = ("type", "format", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum")


def decimal_schema(schema: dict, *, places: int | None, request: bool) -> dict:
    """A DecimalField's schema as a JSON number of format decimal. In a request it may also be a
    string (DRF's DecimalField takes both); its precision is said in the description."""
    schema = {**schema, "format": "decimal"}
    exact = f"An exact decimal with at most {places} decimal places" if places is not None else "An exact decimal"
    if request:
        number = {key: schema.pop(key) for key in _NUMBER_KEYS if key in schema}
        schema = {"anyOf": [number, {"type": "string", "format": "decimal"}], **schema}
        sentence = f"{exact}: a JSON number (read exactly, never as a float) or a string."
    else:
        sentence = f"{exact}, written as a JSON number: its exact value, plain notation, no trailing zeros."
    description = schema.get("description")
    schema["description"] = f"{description.rstrip()} {sentence}" if description else sentence
    return schema
