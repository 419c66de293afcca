"""Serializers the APIs share: StrictSerializer, and FastListSerializer for lists of many flat records.

DRF spends tens of microseconds of generic machinery per record (field lookups, empty-value handling,
validator objects, error bookkeeping). FastListSerializer compiles the child serializer's declared
fields, once per class, into plain conversions that give exactly what DRF gives for the common,
canonical input (a JSON string for a CharField, an int for an IntegerField, ...). Every rule is read
from the declared fields and their validators, so there is no second copy of them. Whatever the
compiled path cannot prove valid — another type, a value out of range, a field or validator it does
not know — raises NotFast and goes through DRF unchanged, so every error and every lenient coercion
stays DRF's own. On output it writes the same primitives DRF's fields write, item by item.
"""

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, DecimalException

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import setting_changed
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinLengthValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
)
from django.db.models.manager import BaseManager
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import ISO_8601, serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings
from rest_framework.validators import ProhibitSurrogateCharactersValidator


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo never silently drops data."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
        return super().to_internal_value(data)


class NotFast(Exception):
    """The value needs DRF's own validation: it may be invalid, or valid in a way only DRF handles."""


Converter = Callable[[object], object]

# --- Input: primitive value -> the internal value DRF's field returns ----------------------------


def _char(field: serializers.CharField) -> Converter:
    trim, allow_blank = field.trim_whitespace, field.allow_blank

    def convert(value):
        if type(value) is not str:
            raise NotFast
        if trim:
            value = value.strip()
        if value == "" and not allow_blank:
            raise NotFast
        return value

    return convert


def _integer(_field: serializers.IntegerField) -> Converter:
    def convert(value):
        if type(value) is not int:  # Not bool, not "5", not 5.0.
            raise NotFast
        return value

    return convert


def _float(_field: serializers.FloatField) -> Converter:
    def convert(value):
        if type(value) is float:
            if not math.isfinite(value):
                raise NotFast
            return value
        if type(value) is Decimal:  # How core.api.parsers reads a JSON 1.8; float() is what DRF does.
            number = float(value)
            if not math.isfinite(number):
                raise NotFast
            return number
        if type(value) is int:
            try:
                return float(value)
            except OverflowError:
                raise NotFast from None
        raise NotFast

    return convert


def _boolean(_field: serializers.BooleanField) -> Converter:
    def convert(value):
        if type(value) is not bool:
            raise NotFast
        return value

    return convert


def _decimal(field: serializers.DecimalField) -> Converter | None:
    if field.localize:
        return None

    def convert(value):
        if type(value) is str:
            text = value.strip()
        elif type(value) is int or type(value) is Decimal:  # A JSON number (core.api.parsers).
            text = str(value)
        else:
            raise NotFast
        if not text or len(text) > field.MAX_STRING_LENGTH:
            raise NotFast
        try:
            number = Decimal(text)
        except DecimalException:
            raise NotFast from None
        if not number.is_finite():
            raise NotFast
        return field.quantize(field.validate_precision(number))  # DRF's own; ValidationError falls back.

    return convert


def aware_datetime_converter(field: serializers.DateTimeField) -> Converter | None:
    """An ISO 8601 string with an offset, parsed and moved into the field's time zone as DRF's
    DateTimeField does (parse_datetime, enforce_timezone). The zone is read when the converter is
    made: once per list, not per record as DRF reads it (the same within one request)."""
    formats = getattr(field, "input_formats", api_settings.DATETIME_INPUT_FORMATS)
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()
    if not formats or formats[0].lower() != ISO_8601 or zone is None:
        return None

    def convert(value):
        if type(value) is not str:
            raise NotFast
        try:
            parsed = datetime.fromisoformat(value)  # What django.utils.dateparse.parse_datetime tries first.
        except ValueError:
            raise NotFast from None
        if parsed.tzinfo is None:
            raise NotFast
        try:
            return parsed.astimezone(zone)
        except OverflowError:
            raise NotFast from None

    return convert


_CONVERTERS: dict[type, Callable[[serializers.Field], Converter | None]] = {
    serializers.CharField: _char,
    serializers.IntegerField: _integer,
    serializers.FloatField: _float,
    serializers.BooleanField: _boolean,
    serializers.DecimalField: _decimal,
    serializers.DateTimeField: aware_datetime_converter,
}


def fast_converter_for(field_class: type):
    """Register the fast converter of a project field class that overrides DRF's conversion. The
    converter must return what the field's run_validation returns, or raise NotFast."""

    def register(factory):
        _CONVERTERS[field_class] = factory
        return factory

    return register


_SURROGATE = re.compile("[\ud800-\udfff]")


def _validator_check(validator) -> Callable[[object], bool] | None:
    """A predicate true exactly when the DRF/Django validator would pass the value."""
    kind = type(validator)
    if kind is ProhibitNullCharactersValidator:
        return lambda value: "\x00" not in str(value)
    if kind is ProhibitSurrogateCharactersValidator:
        return lambda value: _SURROGATE.search(str(value)) is None
    limit = getattr(validator, "limit_value", None)
    if limit is None or callable(limit):
        return None
    if kind is MaxValueValidator:
        return lambda value: not value > limit
    if kind is MinValueValidator:
        return lambda value: not value < limit
    if kind is MaxLengthValidator:
        return lambda value: not len(value) > limit
    if kind is MinLengthValidator:
        return lambda value: not len(value) < limit
    return None


def _text_safe(value) -> bool:
    """ProhibitNullCharactersValidator and ProhibitSurrogateCharactersValidator in one check (a
    CharField has both); ASCII text, the usual kind, skips the surrogate search."""
    text = value if type(value) is str else str(value)
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def _validator_checks(validators: list) -> list | None:
    kinds = [type(validator) for validator in validators]
    fused = ProhibitNullCharactersValidator in kinds and ProhibitSurrogateCharactersValidator in kinds
    if fused:
        validators = [
            v
            for v in validators
            if type(v) not in (ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator)
        ]
    checks = [_validator_check(validator) for validator in validators]
    if None in checks:
        return None
    return [_text_safe, *checks] if fused else checks


def _checked(convert: Converter, checks: list) -> Converter:
    if not checks:
        return convert
    if len(checks) == 1:
        (passes,) = checks

        def checked_once(value):
            value = convert(value)
            if not passes(value):
                raise NotFast
            return value

        return checked_once

    def checked(value):
        value = convert(value)
        for passes in checks:
            if not passes(value):
                raise NotFast
        return value

    return checked


# A missing value is required (DRF says so), skipped, or replaced by the field's default.
_REQUIRED = object()
_SKIP = object()
_ABSENT = object()


def _missing_value(field: serializers.Field):
    if field.required:
        return _REQUIRED
    if field.default is empty:
        return _SKIP
    return field.default


Validated = Callable[[object, serializers.Serializer], dict]


class _InputPlan:
    """A serializer class's fields, each with a maker of its converter. bind() makes the converters
    for one list, so what they read from the request's context (the time zone) is read once."""

    __slots__ = ("code", "fields", "names", "refuses_unknown", "validates")

    def __init__(self, *, fields: list, names: frozenset, refuses_unknown: bool, validates: bool):
        self.fields = fields
        self.names = names
        self.refuses_unknown = refuses_unknown
        self.validates = validates
        self.code = _validated_code(fields, refuses_unknown=refuses_unknown, validates=validates)

    def bind(self) -> Validated | None:
        namespace = {"NotFast": NotFast, "ABSENT": _ABSENT, "names": self.names, "SURROGATE": _SURROGATE}
        for index, (_name, make_converter, _allow_null, missing, _inline) in enumerate(self.fields):
            convert = make_converter()
            if convert is None:
                return None
            namespace[f"convert_{index}"], namespace[f"missing_{index}"] = convert, missing
        exec(self.code, namespace)  # noqa: S102 -- _validated_code's: the declared fields' names as literals
        return namespace["validated"]


_TEXT_VALIDATORS = [ProhibitNullCharactersValidator, ProhibitSurrogateCharactersValidator]


def _inline_conversion(field: serializers.Field) -> list[str] | None:
    """The conversion of the commonest fields as lines of code on `value` (what _integer, _boolean and
    _char with _text_safe do, without a call per field), or None: the field's converter is called."""
    kinds = [type(validator) for validator in field.validators]
    if type(field) is serializers.IntegerField and not kinds:
        return ["if type(value) is not int:", "    raise NotFast"]
    if type(field) is serializers.BooleanField and not kinds:
        return ["if type(value) is not bool:", "    raise NotFast"]
    if type(field) is serializers.CharField and kinds == _TEXT_VALIDATORS:
        lines = ["if type(value) is not str:", "    raise NotFast"]
        if field.trim_whitespace:
            lines.append("value = value.strip()")
        if not field.allow_blank:
            lines += ["if not value:", "    raise NotFast"]
        return [
            *lines,
            'if "\\x00" in value or not (value.isascii() or SURROGATE.search(value) is None):',
            "    raise NotFast",
        ]
    return None


def _validated_code(fields: list, *, refuses_unknown: bool, validates: bool):
    """The code of validated(data, serializer): what serializer.run_validation(data) returns, or
    NotFast. Straight-line Python, one block per field (a loop over the fields cost more than the
    conversions themselves), compiled once per serializer class; names reach the code as string
    literals (repr), and each list's converters and the defaults through the namespace, never as code."""
    unknown = " or not names.issuperset(data)" if refuses_unknown else ""
    lines = [
        "def validated(data, serializer):",
        f"    if type(data) is not dict{unknown}:",
        "        raise NotFast",
        "    attrs = {}",
    ]
    for index, (name, _make_converter, allow_null, missing, inline) in enumerate(fields):
        key = repr(name)
        if missing is _REQUIRED:
            when_absent = "raise NotFast"
        elif missing is _SKIP:
            when_absent = "pass"
        else:
            when_absent = f"attrs[{key}] = missing_{index}"
        lines += [
            f"    value = data.get({key}, ABSENT)",
            "    if value is ABSENT:",
            f"        {when_absent}",
            "    elif value is None:",
            f"        {f'attrs[{key}] = None' if allow_null else 'raise NotFast'}",
            "    else:",
            *(
                [f"        {line}" for line in inline] + [f"        attrs[{key}] = value"]
                if inline
                else [f"        attrs[{key}] = convert_{index}(value)"]
            ),
        ]
    lines.append("    return serializer.validate(attrs)" if validates else "    return attrs")
    return compile("\n".join(lines), "<compiled serializer input>", "exec")


_UNCHANGED_SERIALIZER_METHODS = (
    "__init__",
    "get_fields",
    "get_value",
    "validate_empty_values",
    "run_validation",
    "run_validators",
    "get_validators",
)


def _plain_serializer(serializer: serializers.Serializer) -> bool:
    """True when the class leaves DRF's validation as it is, apart from validate() and strictness."""
    cls = type(serializer)
    return (
        all(getattr(cls, name) is getattr(serializers.Serializer, name) for name in _UNCHANGED_SERIALIZER_METHODS)
        and cls.to_internal_value in (serializers.Serializer.to_internal_value, StrictSerializer.to_internal_value)
        and not serializer.validators
        and not any(field.read_only for field in serializer.fields.values())
    )


def _nested_maker(field: serializers.Serializer) -> Callable[[], Converter | None] | None:
    plan = _input_plan(field)
    if plan is None or plan.validates:
        return None

    def make_converter():
        validated = plan.bind()
        return None if validated is None else lambda value: validated(value, field)

    return make_converter


def _converter_maker(field: serializers.Field) -> Callable[[], Converter | None] | None:
    """What makes the field's converter for a list, or None when the fast path cannot match DRF for it."""
    if field.source != field.field_name or (field.default is not empty and callable(field.default)):
        return None
    if isinstance(field, serializers.Serializer):
        return _nested_maker(field)
    factory = _CONVERTERS.get(type(field))
    checks = _validator_checks(field.validators)
    if factory is None or checks is None or factory(field) is None:
        return None

    def make_converter():
        convert = factory(field)
        return None if convert is None else _checked(convert, checks)

    return make_converter


def _compile_input(serializer: serializers.Serializer) -> _InputPlan | None:
    if not _plain_serializer(serializer):
        return None
    fields = []
    for name, field in serializer.fields.items():
        make_converter = _converter_maker(field)
        if make_converter is None or hasattr(serializer, f"validate_{name}"):
            return None
        fields.append((name, make_converter, field.allow_null, _missing_value(field), _inline_conversion(field)))
    return _InputPlan(
        fields=fields,
        names=frozenset(serializer.fields),
        refuses_unknown=isinstance(serializer, StrictSerializer),
        validates=type(serializer).validate is not serializers.Serializer.validate,
    )


_INPUT_PLANS: dict[type, _InputPlan | None] = {}


def _input_plan(serializer: serializers.Serializer) -> _InputPlan | None:
    """Compiled once per class: _plain_serializer guarantees every instance has the declared fields."""
    cls = type(serializer)
    if cls not in _INPUT_PLANS:
        _INPUT_PLANS[cls] = _compile_input(serializer)
    return _INPUT_PLANS[cls]


# --- Output: attribute -> the primitive DRF's field writes ----------------------------------------


def _decimal_output(field: serializers.DecimalField) -> Converter:
    coerce = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
    if field.localize or field.normalize_output or field.decimal_places is None:
        return field.to_representation
    places, max_digits = field.decimal_places, field.max_digits
    if not coerce:
        return _decimal_unchanged(field, places=places, max_digits=max_digits)

    def represent(value):
        if type(value) is Decimal and value.is_finite():
            # "f" writes exactly the value's own decimal places: as many as the field's means DRF's
            # quantize changes nothing; at most max_digits + 1 characters means no more digits.
            text = f"{value:f}"
            point = text.find(".")
            own_places = 0 if point == -1 else len(text) - point - 1
            if own_places == places and (max_digits is None or len(text) <= max_digits + 1):
                return text
        return field.to_representation(value)

    return represent


def _decimal_unchanged(field: serializers.DecimalField, *, places: int, max_digits: int | None) -> Converter:
    """DRF's Decimal output (COERCE_DECIMAL_TO_STRING off: the renderer writes it as a JSON number): a
    Decimal that already has the field's places and fits its digits is what DRF's quantize returns."""
    quantum = Decimal(1).scaleb(-places)
    # Digits of a value with `places` places: adjusted() + places + 1 (a zero counts one digit).
    adjusted_limit = None if max_digits is None else max_digits - places - 1

    def represent(value):
        if (
            type(value) is Decimal
            and value.same_quantum(quantum)  # Its exponent is -places (False for NaN and infinities).
            and (adjusted_limit is None or value.adjusted() <= adjusted_limit)
        ):
            return value
        return field.to_representation(value)

    return represent


def _datetime_output(field: serializers.DateTimeField) -> Converter:
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()
    if output_format is None or output_format.lower() != ISO_8601 or zone is None:
        return field.to_representation

    def represent(value):
        if type(value) is datetime and value.utcoffset() is not None:
            try:
                text = value.astimezone(zone).isoformat()
            except OverflowError:
                return field.to_representation(value)
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return field.to_representation(value)

    return represent


def _date_output(field: serializers.DateField) -> Converter:
    output_format = getattr(field, "format", api_settings.DATE_FORMAT)
    if output_format is None or output_format.lower() != ISO_8601:
        return field.to_representation

    def represent(value):
        if type(value) is date:
            return value.isoformat()
        return field.to_representation(value)

    return represent


_REPRESENTERS: dict[type, Callable[[serializers.Field], Converter]] = {
    serializers.IntegerField: lambda _field: int,  # What IntegerField.to_representation does.
    serializers.CharField: lambda _field: str,
    serializers.FloatField: lambda _field: float,
    serializers.DecimalField: _decimal_output,
    serializers.DateTimeField: _datetime_output,
    serializers.DateField: _date_output,
    serializers.BooleanField: lambda _field: bool,  # BooleanField.to_representation of a bool.
}


def _output_representers(serializer: serializers.Serializer) -> list | None:
    """(name, represent) per readable field, bound now: settings and the time zone are read per list."""
    if type(serializer).to_representation is not serializers.Serializer.to_representation:
        return None
    representers = []
    for name, field in serializer.fields.items():
        if field.write_only:
            continue
        factory = _REPRESENTERS.get(type(field))
        if factory is None or field.source != name:
            return None
        representers.append((name, factory(field)))
    return representers


def _represented(item, representers: list) -> dict:
    """What Serializer.to_representation(item) returns, or NotFast."""
    if isinstance(item, Mapping):
        raise NotFast
    row = {}
    for name, represent in representers:
        try:
            value = getattr(item, name)
        except (AttributeError, ObjectDoesNotExist):
            raise NotFast from None
        if value is None:
            row[name] = None
        elif callable(value):
            raise NotFast
        else:
            row[name] = represent(value)
    return row


class FastListSerializer(serializers.ListSerializer):
    """A ListSerializer that validates and represents each item on the compiled path when it can.
    Use it as the child's Meta.list_serializer_class; errors and their shape stay DRF's."""

    def to_internal_value(self, data):
        plan = _input_plan(self.child)
        self._fast_validated = None if plan is None or getattr(self.root, "partial", False) else plan.bind()
        try:
            return super().to_internal_value(data)
        finally:
            self._fast_validated = None

    def run_child_validation(self, data):
        fast_validated = getattr(self, "_fast_validated", None)
        if fast_validated is not None:
            try:
                return fast_validated(data, self.child)
            except (NotFast, serializers.ValidationError, DjangoValidationError):
                pass  # DRF decides, and words the error.
        return super().run_child_validation(data)

    def to_representation(self, data):
        representers = _output_representers(self.child)
        if representers is None:
            return super().to_representation(data)
        items = data.all() if isinstance(data, BaseManager) else data
        rows = []
        for item in items:
            try:
                rows.append(_represented(item, representers))
            except NotFast:
                rows.append(self.child.to_representation(item))
        return rows


# --- Output of a whole response: nested serializers compiled once per class ------------------------


def _nested_representer(field: serializers.Field) -> Converter | None:
    """The representer of a nested serializer field (one object, or a list of them), or None."""
    if isinstance(field, serializers.ListSerializer):
        list_class = type(field)
        if list_class not in (serializers.ListSerializer, FastListSerializer):
            return None
        represent_item = _compiled_output(field.child)
        if represent_item is None:
            return None

        def represent(value):
            items = value.all() if isinstance(value, BaseManager) else value
            return [represent_item(item) for item in items]

        return represent
    return _compiled_output(field)


def _field_representer(field: serializers.Field) -> Converter | None:
    if field.source != field.field_name:
        return None
    if isinstance(field, serializers.BaseSerializer):
        return _nested_representer(field)
    factory = _REPRESENTERS.get(type(field))
    return None if factory is None else factory(field)


def _compiled_output(serializer: serializers.Serializer) -> Callable[[object], dict] | None:
    """A function giving what serializer.to_representation(instance) gives (or raising NotFast), for a
    plain serializer whose readable fields are all primitives or such serializers; None otherwise."""
    if not isinstance(serializer, serializers.Serializer):
        return None
    if type(serializer).to_representation is not serializers.Serializer.to_representation:
        return None
    names, representers = [], []
    for name, field in serializer.fields.items():
        if field.write_only:
            continue
        represent = _field_representer(field)
        if represent is None:
            return None
        names.append(name)
        representers.append(represent)
    if not names:
        return None
    return _represented_function(names, representers)


def _entry(value: str, represent_name: str, represent: Converter) -> str:
    """The expression writing one field's value; an int or a str as it is when int() or str() would
    return it unchanged (a subclass, bool included, goes through its representer)."""
    written = f"None if {value} is None else {represent_name}({value})"
    if represent is int or represent is str:
        return f"{value} if type({value}) is {represent.__name__} else ({written})"
    return written


def _represented_function(names: list[str], representers: list[Converter]) -> Callable[[object], dict]:
    """represented(instance): the fields' values read at once (itemgetter for a mapping, attrgetter
    otherwise, as DRF's get_attribute reads them) and written in one dict display: straight-line code
    compiled per serializer, names as string literals (repr), representers through the namespace.
    Whatever DRF would treat apart (a missing value, a callable) raises NotFast."""
    count = len(names)
    values = ", ".join(f"v{index}" for index in range(count)) + ("," if count == 1 else "")
    entries = ", ".join(
        f"{name!r}: {_entry(f'v{index}', f'r{index}', represent)}"
        for index, (name, represent) in enumerate(zip(names, representers, strict=True))
    )
    any_callable = " or ".join(f"callable(v{index})" for index in range(count))
    code = "\n".join(
        [
            "def represented(instance):",
            "    try:",
            "        if type(instance) is dict or isinstance(instance, Mapping):",
            f"            {values} = from_mapping(instance)",
            "        else:",
            f"            {values} = from_object(instance)",
            "    except (KeyError, AttributeError, TypeError, ObjectDoesNotExist):",
            "        raise NotFast from None",
            f"    if {any_callable}:",
            "        raise NotFast",
            f"    return {{{entries}}}",
        ]
    )
    getters = (operator.itemgetter(*names), operator.attrgetter(*names))
    if count == 1:  # A lone getter returns the value itself, not a 1-tuple.
        getters = tuple((lambda instance, get=get: (get(instance),)) for get in getters)
    namespace = {
        "NotFast": NotFast,
        "Mapping": Mapping,
        "ObjectDoesNotExist": ObjectDoesNotExist,
        "from_mapping": getters[0],
        "from_object": getters[1],
        **{f"r{index}": represent for index, represent in enumerate(representers)},
    }
    exec(compile(code, "<compiled serializer output>", "exec"), namespace)  # noqa: S102 -- names as literals only
    return namespace["represented"]


_OUTPUT_PLANS: dict[tuple[type, str], Callable[[object], dict] | None] = {}


@receiver(setting_changed)
def _output_plans_forget(**_kwargs) -> None:
    """Plans read settings when compiled (tests change them)."""
    _OUTPUT_PLANS.clear()


def output_data(serializer_class: type[serializers.Serializer], instance) -> dict:
    """What `serializer_class(instance).data` holds, as plain dicts and lists: through a plan compiled
    once per class and time zone (settings read then, as DRF's fields read them per request; a changed
    setting drops the plans), or DRF's own serializer whenever the plan cannot vouch for the result.
    Building DRF's serializer copies every declared field of the tree per request: for the stats
    response that is most of the API's fixed cost."""
    key = (serializer_class, timezone.get_current_timezone_name())
    if key not in _OUTPUT_PLANS:
        _OUTPUT_PLANS[key] = _compiled_output(serializer_class())
    plan = _OUTPUT_PLANS[key]
    if plan is not None:
        try:
            return plan(instance)
        except NotFast:
            pass
    return serializer_class(instance).data
