"""JSON out of the APIs with money as numbers written from the exact Decimal, never through a float.

DRF's own encoder writes a Decimal as float(value): 36.64875634 may come out 36.648756339999996 and a
24-place stored cost loses its last digits. Python's json module has no hook that emits raw number
text (default() must return something it encodes, and it encodes a str as a JSON string), so
default() returns the number's text between two random marks, and encode() removes the marks with
the quotes around them. The marks are made once per process, never leave it and no client can know
them, so no string a client sent can turn into a number. Everything else is DRF's encoder (datetimes,
UUIDs, ...) and renderer (indent, compact separators, U+2028/9 escaped).
"""

import decimal
import secrets
from decimal import Decimal

from rest_framework import renderers
from rest_framework.utils import encoders

_OPEN = secrets.token_hex(8)
_CLOSE = secrets.token_hex(8)
_OPENING, _CLOSING = f'"{_OPEN}', f'{_CLOSE}"'
_UNROUNDED = decimal.Context(prec=decimal.MAX_PREC)


def decimal_json_text(value: Decimal) -> str:
    """A Decimal as JSON number text: its exact value in plain notation, no exponent and no trailing
    zeros after the point (Decimal("2.2E-7") -> 0.00000022, Decimal("0E-24") -> 0, 1.50000000 -> 1.5).
    JSON has no NaN or infinity: those raise ValueError, as the standard encoder does for floats."""
    if not value.is_finite():
        raise ValueError(f"Out of range decimal values are not JSON compliant: {value}")
    normal = value.normalize(_UNROUNDED)  # Drops trailing zeros, never a digit.
    text = str(normal)
    if "E" in text:  # str() writes an exponent below 1E-6 and for whole numbers with trailing zeros.
        text = f"{normal:f}"
    return "0" if text == "-0" else text


class DecimalJSONEncoder(encoders.JSONEncoder):
    """DRF's JSONEncoder, but a Decimal becomes a JSON number with exactly its digits (decimal_json_text).
    Use it through json.dumps(..., cls=DecimalJSONEncoder) (encode); iterencode alone leaves the marks."""

    def default(self, obj):
        if isinstance(obj, Decimal):
            return f"{_OPEN}{decimal_json_text(obj)}{_CLOSE}"
        return super().default(obj)

    def encode(self, o) -> str:
        # The marks, and the quotes around each marked number, are dropped (a scan when there is none).
        return super().encode(o).replace(_OPENING, "").replace(_CLOSING, "")


class JSONRenderer(renderers.JSONRenderer):
    """The APIs' renderer (REST_FRAMEWORK DEFAULT_RENDERER_CLASSES): DRF's, with DecimalJSONEncoder."""

    encoder_class = DecimalJSONEncoder
