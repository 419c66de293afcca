"""The rules a recorded call obeys, whoever records it: the usage API and Python callers alike.

`usage_ingest` (and so `usage_record` and `usage_record_batch`) checks every record here before
anything is stored. The usage API's serializer only turns JSON into Python values and leaves the
rules to this module, so an HTTP caller and a Python caller get the same error for the same record.
The messages are worded as DRF words the same kind of rule, which is what the API always said.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS, cost_exact
from usage.usage_objects import MAX_TOKENS, UsageObjectInvalid, usage_object_tokens, whole_number_checked

MAX_USER_ID = MAX_TOKENS
MAX_RESPONSE_SECONDS = 86_400
MAX_NAME = 100  # model_name, decision_id, idempotency_key, purpose: varchar(100)
MAX_ERROR_MESSAGE = 10_000
TEXT_LIMITS = {
    "model_name": MAX_NAME,
    "decision_id": MAX_NAME,
    "idempotency_key": MAX_NAME,
    "error_message": MAX_ERROR_MESSAGE,
    "purpose": MAX_NAME,
}
# The token kinds a call carries (OpenAI's inclusive convention): every input token is in
# prompt_tokens, the parts of it after it; every output token in completion_tokens, likewise.
PROMPT_PARTS = ("cached_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "input_audio_tokens")
COMPLETION_PARTS = ("reasoning_tokens", "output_audio_tokens", "output_image_tokens")
# In the API's field order (the order the rules check them in).
TOKEN_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "output_image_tokens",
)
# Messages in English, translated (gettext) where they are raised, in the request's language.
PROMPT_PARTS_EXCEED = gettext_noop(
    "cached_tokens, cache_write_5m_tokens, cache_write_1h_tokens and input_audio_tokens together "
    "cannot exceed prompt_tokens."
)
COMPLETION_PARTS_EXCEED = gettext_noop(
    "reasoning_tokens, output_audio_tokens and output_image_tokens together cannot exceed completion_tokens."
)
EARLIEST_CALL = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_CLOCK_SKEW = timedelta(days=1)
COST_MAX_WHOLE_DIGITS = COST_MAX_DIGITS - COST_DECIMAL_PLACES

NAIVE_TIMESTAMP = gettext_noop("Timestamp must include a time zone offset, e.g. 2026-11-24T10:00:00Z.")
IMPLAUSIBLE_TIMESTAMP = gettext_noop(
    "Timestamp must lie between 2000-01-01 and one day after the server's current time."
)


@dataclass(kw_only=True, slots=True)
class UsageRecordInput:
    """One call as a client reports it. `usage_ingest` checks it (usage_record_validated) first and
    stores the CheckedRecord it makes, so this input form need not be frozen (frozen would cost a
    microsecond per record to build: the API builds thousands per batch).

    The token fields are None when not given (0, or taken from `usage`): a provider's usage
    object (`response.usage.model_dump()`, see usage.usage_objects) instead of them, never with them."""

    model_name: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    input_audio_tokens: int | None = None
    output_audio_tokens: int | None = None
    output_image_tokens: int | None = None
    usage: Mapping | None = None
    decision_id: str = ""
    idempotency_key: str = ""
    user_id: int | None = None
    response_time: float | None = None
    success: bool = True
    error_message: str = ""
    purpose: str = ""
    timestamp: datetime | None = None
    cost: Decimal | None = None  # The provider's figure, when the caller has one.


class CheckedRecord(NamedTuple):
    """A record that obeys every rule, as ingestion stores it (a tuple: thousands per batch)."""

    model_name: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    input_audio_tokens: int
    output_audio_tokens: int
    output_image_tokens: int
    decision_id: str
    idempotency_key: str
    user_id: int | None
    response_time: float | None
    success: bool
    error_message: str
    purpose: str
    timestamp: datetime | None
    cost: Decimal | None

    @property
    def idempotency_pair(self) -> tuple[str, str] | None:
        return (self.decision_id, self.idempotency_key) if self.idempotency_key else None


class UsageRecordInvalid(ValidationError):
    """A record breaks a rule: `field` is its path (`cached_tokens`, or `records[2].cached_tokens`
    in a batch), `message` the rule's wording. str() is "field: message", as the API's message."""

    def __init__(self, field: str, message: str, code: str = "invalid"):
        super().__init__({field: [ValidationError(message, code=code)]})
        self.field = field
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def within(self, prefix: str) -> "UsageRecordInvalid":
        """The same error seen from a container, e.g. within("records[2]")."""
        return UsageRecordInvalid(f"{prefix}.{self.field}", self.message, self.code)


_SURROGATE = re.compile("[\ud800-\udfff]")


# DRF's own messages (and msgids), so both paths of the API say the same in every language.
def _at_least() -> str:
    return _("Ensure this value is greater than or equal to {min_value}.")


def _at_most() -> str:
    return _("Ensure this value is less than or equal to {max_value}.")


def _text(name: str, value, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise UsageRecordInvalid(name, _("Not a valid string."))
    value = value.strip()  # As DRF trims a JSON string: " gpt-4o " is gpt-4o from either side.
    if required and not value:
        raise UsageRecordInvalid(name, _("This field may not be blank."), "blank")
    limit = TEXT_LIMITS[name]
    if len(value) > limit:
        message = _("Ensure this field has no more than {max_length} characters.").format(max_length=limit)
        raise UsageRecordInvalid(name, message, "max_length")
    if "\x00" in value:
        raise UsageRecordInvalid(name, _("Null characters are not allowed."), "null_characters_not_allowed")
    surrogate = None if value.isascii() else _SURROGATE.search(value)
    if surrogate:
        message = _("Surrogate characters are not allowed: U+{code_point:X}.").format(code_point=ord(surrogate[0]))
        raise UsageRecordInvalid(name, message, "surrogate_characters_not_allowed")
    return value


def _whole_number(name: str, value, *, low: int, high: int) -> int:
    try:
        return whole_number_checked(name, value, low=low, high=high)
    except UsageObjectInvalid as error:
        raise UsageRecordInvalid(error.path, error.message, error.code) from None


def _tokens(name: str, value) -> int:
    return _whole_number(name, value, low=0, high=MAX_TOKENS)


def _tokens_from_usage(usage) -> tuple[int, ...]:
    """The token counts (TOKEN_FIELDS order) of a provider's usage object (usage.usage_objects)."""
    try:
        counts = usage_object_tokens(usage, path="usage")
    except UsageObjectInvalid as error:
        raise UsageRecordInvalid(error.path, error.message, error.code) from None
    return tuple(getattr(counts, name) for name in TOKEN_FIELDS)


def _response_time(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageRecordInvalid("response_time", _("A valid number is required."))
    if value < 0:
        raise UsageRecordInvalid("response_time", _at_least().format(min_value=0), "min_value")
    if value > MAX_RESPONSE_SECONDS:
        raise UsageRecordInvalid("response_time", _at_most().format(max_value=MAX_RESPONSE_SECONDS), "max_value")
    return float(value)


def _timestamp(value, latest: datetime) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        message = _("Expected a datetime but got a date.") if isinstance(value, date) else _("Expected a datetime.")
        raise UsageRecordInvalid("timestamp", message)
    if value.utcoffset() is None:
        raise UsageRecordInvalid("timestamp", _(NAIVE_TIMESTAMP), "naive")
    if not EARLIEST_CALL <= value <= latest:
        raise UsageRecordInvalid("timestamp", _(IMPLAUSIBLE_TIMESTAMP), "implausible")
    return value


def _cost_digits(value: Decimal) -> tuple[int, int, int]:
    """(total digits, whole digits, decimal places), counted as DRF's DecimalField counts them."""
    _sign, digits, exponent = value.as_tuple()
    if exponent >= 0:
        return len(digits) + exponent, len(digits) + exponent, 0
    if len(digits) > -exponent:
        return len(digits), len(digits) + exponent, -exponent
    return -exponent, 0, -exponent


def _cost(value) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise UsageRecordInvalid("cost", _("A valid number is required; give money as a Decimal."))
    if not value.is_finite():
        raise UsageRecordInvalid("cost", _("A valid number is required."))
    total, whole, places = _cost_digits(value)
    if total > COST_MAX_DIGITS:
        message = _("Ensure that there are no more than {max_digits} digits in total.").format(
            max_digits=COST_MAX_DIGITS
        )
        raise UsageRecordInvalid("cost", message)
    if places > COST_DECIMAL_PLACES:
        message = _("Ensure that there are no more than {max_decimal_places} decimal places.").format(
            max_decimal_places=COST_DECIMAL_PLACES
        )
        raise UsageRecordInvalid("cost", message, "max_decimal_places")
    if whole > COST_MAX_WHOLE_DIGITS:
        message = _("Ensure that there are no more than {max_whole_digits} digits before the decimal point.").format(
            max_whole_digits=COST_MAX_WHOLE_DIGITS
        )
        raise UsageRecordInvalid("cost", message, "max_whole_digits")
    if value < 0:
        raise UsageRecordInvalid("cost", _at_least().format(min_value=0), "min_value")
    return cost_exact(value)  # At the stored scale; never rounds (the places were checked above).


def _given_tokens(record: UsageRecordInput) -> list[int]:
    values = (getattr(record, name) for name in TOKEN_FIELDS)
    return [0 if value is None else _tokens(name, value) for name, value in zip(TOKEN_FIELDS, values, strict=True)]


def _parts_within(counts: dict[str, int], whole: str, parts: tuple[str, ...], exceed: str) -> None:
    """The parts of `whole` together within it; the part that takes the sum past it is named."""
    total = 0
    for index, part in enumerate(parts):
        total += counts[part]
        if total > counts[whole]:
            raise UsageRecordInvalid(part, _("Cannot exceed {whole}.").format(whole=whole) if index == 0 else _(exceed))


def usage_record_validated(record: UsageRecordInput, *, now: datetime) -> CheckedRecord:
    """The record as stored (text trimmed, tokens from `usage`, cost at its stored precision), or
    UsageRecordInvalid naming the first rule it breaks. The fields are checked in the API's field
    order, the rules between fields after them."""
    if not isinstance(record, UsageRecordInput):
        raise UsageRecordInvalid("record", f"Expected a UsageRecordInput, not {type(record).__name__}.")
    model_name = _text("model_name", record.model_name, required=True)
    decision_id = _text("decision_id", record.decision_id)
    idempotency_key = _text("idempotency_key", record.idempotency_key)
    user_id = record.user_id
    if user_id is not None:
        user_id = _whole_number("user_id", user_id, low=1, high=MAX_USER_ID)
    tokens = _given_tokens(record)
    if record.usage is not None:
        from_usage = _tokens_from_usage(record.usage)
        given = [name for name in TOKEN_FIELDS if getattr(record, name) is not None]
        if given:
            message = _("Give either usage or {fields}, not both.").format(fields=", ".join(given))
            raise UsageRecordInvalid("usage", message)
        tokens = from_usage
    response_time = _response_time(record.response_time)
    if type(record.success) is not bool:
        raise UsageRecordInvalid("success", _("Must be a valid boolean."))
    error_message = _text("error_message", record.error_message)
    purpose = _text("purpose", record.purpose)
    timestamp = _timestamp(record.timestamp, now + LATEST_CLOCK_SKEW)
    cost = _cost(record.cost)
    counts = dict(zip(TOKEN_FIELDS, tokens, strict=True))
    _parts_within(counts, "prompt_tokens", PROMPT_PARTS, PROMPT_PARTS_EXCEED)
    _parts_within(counts, "completion_tokens", COMPLETION_PARTS, COMPLETION_PARTS_EXCEED)
    return CheckedRecord(
        model_name,
        *tokens,
        decision_id,
        idempotency_key,
        user_id,
        response_time,
        record.success,
        error_message,
        purpose,
        timestamp,
        cost,
    )


def _plain_text(value, limit: int) -> bool:
    """Text the rules pass unchanged: ASCII, nothing to trim (no control or space at either end)."""
    return (
        type(value) is str
        and len(value) <= limit
        and value.isascii()
        and "\x00" not in value
        and (not value or (value[0] > " " and value[-1] > " "))
    )


_new_tuple = tuple.__new__


# Zones with one offset forever: a timestamp in one of them compares with bounds in the same zone
# object as plain wall times (exact, and far cheaper than comparing across zones).
_UTC_KEYS = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT"})


def zone_offset_fixed(zone) -> bool:
    """Whether `zone` (a tzinfo, or None) has one offset forever: moments in it compare with bounds
    moved into the same zone object as plain wall times, exactly."""
    return isinstance(zone, timezone) or getattr(zone, "key", None) in _UTC_KEYS


class PlausibleWindow:
    """From EARLIEST_CALL to `latest`, with the bounds moved once per batch into each fixed-offset
    zone its timestamps come in (the API's are in the current zone, Python callers' often in UTC)."""

    __slots__ = ("_by_zone", "latest")

    def __init__(self, latest: datetime):
        self.latest = latest
        self._by_zone: dict = {}

    def bounds(self, zone) -> tuple[datetime, datetime] | None:
        """The bounds in `zone` if it has a fixed offset; None for other zones (and naive values)."""
        try:
            return self._by_zone[zone]
        except KeyError:
            fixed = zone_offset_fixed(zone)
            bounds = (EARLIEST_CALL.astimezone(zone), self.latest.astimezone(zone)) if fixed else None
            self._by_zone[zone] = bounds
            return bounds


def _plain_moment(timestamp, window: PlausibleWindow) -> bool:
    if type(timestamp) is not datetime:
        return False
    bounds = window.bounds(timestamp.tzinfo)
    if bounds is not None:
        return bounds[0] <= timestamp <= bounds[1]
    return timestamp.utcoffset() is not None and EARLIEST_CALL <= timestamp <= window.latest


def _plain_parts(*values) -> tuple[int, ...] | None:
    """The token parts with None as 0, if each is plainly valid; None otherwise."""
    if all(value is None or (type(value) is int and 0 <= value <= MAX_TOKENS) for value in values):
        return tuple(value or 0 for value in values)
    return None


def _plain(record: UsageRecordInput, window: PlausibleWindow) -> CheckedRecord | None:
    """The record as usage_record_validated returns it when it is in the common, plainly valid form
    (what the API's parser and most Python callers give), checked in one pass; None otherwise, and
    usage_record_validated decides (tests/test_usage_record_rules.py holds the two to each other).
    Thousands of records per batch: this keeps the rules cheap for ingestion."""
    prompt, completion = record.prompt_tokens, record.completion_tokens
    cached, reasoning = record.cached_tokens, record.reasoning_tokens
    user_id, response_time, timestamp, cost = record.user_id, record.response_time, record.timestamp, record.cost
    if not (
        record.usage is None
        and type(record.success) is bool
        and _plain_text(record.model_name, MAX_NAME)
        and record.model_name
        and _plain_text(record.decision_id, MAX_NAME)
        and _plain_text(record.idempotency_key, MAX_NAME)
        and _plain_text(record.error_message, MAX_ERROR_MESSAGE)
        and _plain_text(record.purpose, MAX_NAME)
        and (prompt is None or (type(prompt) is int and 0 <= prompt <= MAX_TOKENS))
        and (completion is None or (type(completion) is int and 0 <= completion <= MAX_TOKENS))
        and (cached is None or (type(cached) is int and 0 <= cached <= MAX_TOKENS))
        and (reasoning is None or (type(reasoning) is int and 0 <= reasoning <= MAX_TOKENS))
        and (user_id is None or (type(user_id) is int and 1 <= user_id <= MAX_USER_ID))
        and (response_time is None or (type(response_time) is float and 0 <= response_time <= MAX_RESPONSE_SECONDS))
        and (timestamp is None or _plain_moment(timestamp, window))
        and cost is None
    ):
        return None
    prompt, completion = prompt or 0, completion or 0
    cached, reasoning = cached or 0, reasoning or 0
    w5m, w1h, input_audio = record.cache_write_5m_tokens, record.cache_write_1h_tokens, record.input_audio_tokens
    output_audio, output_image = record.output_audio_tokens, record.output_image_tokens
    if w5m is None and w1h is None and input_audio is None and output_audio is None and output_image is None:
        # Most calls carry no cache writes, audio or images: the four classic counts decide.
        if cached > prompt or reasoning > completion:
            return None
        w5m = w1h = input_audio = output_audio = output_image = 0
    else:
        parts = _plain_parts(w5m, w1h, input_audio, output_audio, output_image)
        if parts is None:
            return None
        w5m, w1h, input_audio, output_audio, output_image = parts
        if cached + w5m + w1h + input_audio > prompt or reasoning + output_audio + output_image > completion:
            return None
    fields = (
        record.model_name,
        prompt,
        completion,
        cached,
        reasoning,
        w5m,
        w1h,
        input_audio,
        output_audio,
        output_image,
        record.decision_id,
        record.idempotency_key,
        user_id,
        response_time,
        record.success,
        record.error_message,
        record.purpose,
        timestamp,
        None,
    )
    return _new_tuple(CheckedRecord, fields)  # CheckedRecord(*fields) without its argument parsing.


def usage_records_validated(records: Sequence[UsageRecordInput], *, now: datetime) -> list[CheckedRecord]:
    """Every record checked; the first that breaks a rule raises, its path `records[i].field`."""
    window = PlausibleWindow(now + LATEST_CLOCK_SKEW)
    validated = []
    for index, record in enumerate(records):
        checked = _plain(record, window) if type(record) is UsageRecordInput else None
        if checked is None:
            try:
                checked = usage_record_validated(record, now=now)
            except UsageRecordInvalid as error:
                raise error.within(f"records[{index}]") from None
        validated.append(checked)
    return validated
