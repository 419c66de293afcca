"""Request JSON with every number that has a fraction or an exponent read as a Decimal, exactly as
written (json's parse_float=Decimal): "cost": 0.1 arrives as Decimal("0.1"), not as the float
0.1000000000000000055..., and a cost with 24 places keeps all of them. Integers stay int. Float
fields (response_time) take the Decimal as DRF's FloatField takes any number: float(value), the same
float the standard parser would have made."""

import codecs
from decimal import Decimal

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json


class JSONParser(parsers.JSONParser):
    """The APIs' parser (REST_FRAMEWORK DEFAULT_PARSER_CLASSES): DRF's, with parse_float=Decimal."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parsers.get_encoding(parser_context)
        try:
            decoded_stream = codecs.getreader(encoding)(stream)
            parse_constant = json.strict_constant if self.strict else None
            return json.load(decoded_stream, parse_constant=parse_constant, parse_float=Decimal)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
