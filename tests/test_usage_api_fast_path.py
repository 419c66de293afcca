"""POST /api/v1/usage/ validates canonical records and writes stored records on a fast path
(core.api.serializers.FastListSerializer). These properties hold it to DRF itself: for generated
records, canonical ones and near misses, validation gives exactly DRF's validated data or DRF's
errors; canonical records never need DRF's per-field machinery; stored records are written exactly
as DRF's fields write them. Each runs in several current time zones: timestamps are converted."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_offset
from decimal import Decimal
from typing import NamedTuple
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from core.api.serializers import FastListSerializer
from ingest.apis import MAX_TOKENS, UsageIngestApi, UsageRecordSerializer
from tests.api_helpers import exact_json
from usage.models import CostSource, UsageLog
from usage.records import UsageRecordInput, UsageRecordInvalid, usage_records_validated

ZONES = ["UTC", "Asia/Kolkata", "America/New_York"]
PROPERTY = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)

# --- Generated input: each field's canonical values, and near misses of every kind -------------

WHITESPACE = st.sampled_from(["", "", " ", "  ", "\t", "\n", "\xa0", "\u2003", "\u3000"])
NOT_TEXT = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=True), st.booleans(), st.none(), st.sampled_from([[], {}, ["a"]])
)


def canonical_text(max_length: int):
    core = st.one_of(st.text(min_size=1, max_size=20), st.sampled_from([max_length - 1, max_length]).map("x".__mul__))
    return st.tuples(WHITESPACE, core, WHITESPACE).map("".join)  # DRF trims before it measures.


def near_miss_text(max_length: int):
    odd = st.sampled_from(["", " ", "\t\n", "a\x00b", "\x00", "\ud800", "x\udfffy", "\u2028", "x" * (max_length + 1)])
    return st.one_of(st.tuples(WHITESPACE, odd, WHITESPACE).map("".join), NOT_TEXT)


def canonical_int(low: int, high: int):
    return st.one_of(st.integers(low, min(high, low + 3000)), st.sampled_from([low, high]))


def near_miss_int(low: int, high: int):
    return st.one_of(
        st.sampled_from([low - 1, high + 1, -(2**63), 2**64]),
        st.booleans(),
        st.sampled_from([5.0, 5.5, -0.0, 1e20, "5", " 7 ", "5.0", "1e3", "", "x", [], {}]),
        st.none(),
    )


CANONICAL_RESPONSE_TIME = st.one_of(st.floats(0, 86_400), st.integers(0, 86_400), st.sampled_from([-0.0, 86_400.0]))
NEAR_MISS_RESPONSE_TIME = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1, 86_401, 86_400.000001, -1e-300, 10**400, "1.5", " 2 ", "nan", True, False, []]),
    st.none(),
)
NEAR_MISS_SUCCESS = st.sampled_from(["true", "False", "yes", "n", 1, 0, 0.0, 2, "", "null", None, []])

# Timestamps: an instant, an offset (None: naive) and a spelling; plus fixed edge cases.
OFFSETS = st.sampled_from(
    [UTC, ZoneInfo("Europe/Berlin"), fixed_offset(timedelta(hours=5, minutes=30)), fixed_offset(-timedelta(hours=8))]
)


def _spelled(moment: datetime, style: str) -> str:
    if style == "z":
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if style == "seconds":
        return moment.isoformat(timespec="seconds")
    if style == "space":
        return moment.isoformat(sep=" ")
    if style == "basic":
        return moment.strftime("%Y%m%dT%H%M%S%z")
    return moment.isoformat()


def _recent(delta: timedelta, zone) -> datetime:
    return (timezone.now() + delta).astimezone(zone)


# Instants near now (the plausibility limit is a day ahead; never within a minute of it, so DRF's clock
# and the fast path's, microseconds apart, agree), and across the whole window and beyond it.
RECENT = st.builds(
    _recent,
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)).filter(
        lambda delta: abs(delta - timedelta(days=1)) > timedelta(minutes=1)
    ),
    OFFSETS,
)


def _instants(low: datetime, high: datetime):
    return st.builds(
        lambda moment, zone: moment.replace(tzinfo=UTC).astimezone(zone),
        st.datetimes(min_value=low.replace(tzinfo=None), max_value=high.replace(tzinfo=None)),
        OFFSETS,
    )


ANY_TIME = _instants(datetime(1999, 12, 31, 20, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
STYLES = st.sampled_from(["iso", "z", "seconds", "space", "basic"])
CANONICAL_TIMESTAMP = st.builds(_spelled, st.one_of(RECENT, ANY_TIME), STYLES)
NEAR_MISS_TIMESTAMP = st.one_of(
    st.builds(lambda moment, style: _spelled(moment.replace(tzinfo=None), style), RECENT, STYLES),  # Naive.
    st.builds(_spelled, _instants(datetime(2030, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)), STYLES),
    st.sampled_from(
        [
            "2000-01-01T00:00:00Z",
            "1999-12-31T23:59:59.999999Z",
            "2000-01-01T05:30:00+05:30",
            "2000-01-01T05:29:59+05:30",
            "9999-12-31T23:59:59-14:00",  # Beyond datetime's range in UTC.
            "0001-01-01T00:00:00+14:00",
            "2026-11-01",
            "2026-13-01T00:00:00Z",
            " 2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00Z ",
            "yesterday",
            "",
        ]
    ),
    st.builds(timezone.now),  # A datetime object, as a Python caller may pass.
    st.sampled_from([1_700_000_000, 1.5, True, None, []]),
)

ODD_BUT_VALID_COSTS = ["0.5", "1e-5", "1E+3", "0E+5", "-0", "1_000", "0.00000001"]
CANONICAL_COST = st.one_of(
    st.decimals(min_value=0, max_value=Decimal("9999999999999999.999999999999999999999999"), places=24).map(str),
    st.decimals(min_value=0, max_value=Decimal(10**6), allow_nan=False, allow_infinity=False).map(str),
    st.tuples(
        WHITESPACE, st.sampled_from(["0.5", "1e-5", "1E+3", "0E+5", "-0", "1_000", "0.00000001"]), WHITESPACE
    ).map("".join),
    st.integers(0, 10**12),
)
NEAR_MISS_COST = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "0.1234567890123456789012345",
            "-1",
            "-0.00000001",
            "10000000000000000",
            "9999999999999999.9999999999999999999999999",
            "0.0000000000000000000000001",
            "NaN",
            "sNaN",
            "Infinity",
            "-inf",
            "",
            "   ",
            "abc",
            "1,5",
            "x" * 1001,
            0.5,
            1e-9,
            True,
            [],
            None,
            -1,
            10**13,
        ]
    ),
)


def _details(key: str, tokens):
    present = st.fixed_dictionaries({}, optional={key: st.one_of(tokens, st.none()), "audio_tokens": st.integers(0, 9)})
    return st.one_of(present, st.none())


NO_EXTRA = st.nothing()


def _usage(tokens, details_extra=NO_EXTRA):
    return st.fixed_dictionaries(
        {"prompt_tokens": tokens},
        optional={
            "completion_tokens": tokens,
            "total_tokens": tokens,
            "prompt_tokens_details": st.one_of(_details("cached_tokens", tokens), details_extra),
            "completion_tokens_details": st.one_of(_details("reasoning_tokens", tokens), details_extra),
            "accepted_prediction_tokens": st.integers(0, 9),  # Passed on as sent: the rules refuse a misplaced key.
        },
    )


TOKENS = canonical_int(0, MAX_TOKENS)
PART_TOKENS = st.integers(0, 1000)  # Cached and reasoning tokens: mostly within their totals.
CANONICAL_USAGE = _usage(TOKENS)
NEAR_MISS_USAGE = st.one_of(
    _usage(st.one_of(TOKENS, near_miss_int(0, MAX_TOKENS)), st.sampled_from([[], "x", 5])),
    st.fixed_dictionaries({}, optional={"completion_tokens": TOKENS}),  # No prompt_tokens.
    st.sampled_from([None, [], "usage", 5]),
)

CANONICAL = {
    "model_name": canonical_text(100),
    "decision_id": canonical_text(100),
    "idempotency_key": canonical_text(100),
    "user_id": canonical_int(1, MAX_TOKENS),
    "prompt_tokens": TOKENS,
    "completion_tokens": TOKENS,
    "cached_tokens": PART_TOKENS,
    "reasoning_tokens": PART_TOKENS,
    "usage": CANONICAL_USAGE,
    "response_time": CANONICAL_RESPONSE_TIME,
    "success": st.booleans(),
    "error_message": canonical_text(10_000),
    "purpose": canonical_text(100),
    "timestamp": CANONICAL_TIMESTAMP,
    "cost": CANONICAL_COST,
}
NEAR_MISS = {
    "model_name": near_miss_text(100),
    "decision_id": near_miss_text(100),
    "idempotency_key": near_miss_text(100),
    "user_id": st.one_of(near_miss_int(1, MAX_TOKENS), st.just(0)),
    "prompt_tokens": near_miss_int(0, MAX_TOKENS),
    "completion_tokens": near_miss_int(0, MAX_TOKENS),
    "cached_tokens": near_miss_int(0, MAX_TOKENS),
    "reasoning_tokens": near_miss_int(0, MAX_TOKENS),
    "usage": NEAR_MISS_USAGE,
    "response_time": NEAR_MISS_RESPONSE_TIME,
    "success": NEAR_MISS_SUCCESS,
    "error_message": near_miss_text(10_000),
    "purpose": near_miss_text(100),
    "timestamp": NEAR_MISS_TIMESTAMP,
    "cost": NEAR_MISS_COST,
}
TOKEN_FIELDS = ["prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"]
OTHER_FIELDS = [name for name in CANONICAL if name not in [*TOKEN_FIELDS, "usage", "model_name"]]


def _record(value_of):
    """A record with some of the fields, each value drawn from value_of(name): usage or the token fields."""
    required = {"model_name": value_of("model_name")}
    others = {name: value_of(name) for name in OTHER_FIELDS}
    return st.one_of(
        st.fixed_dictionaries(required, optional={**others, **{name: value_of(name) for name in TOKEN_FIELDS}}),
        st.fixed_dictionaries(required, optional={**others, "usage": value_of("usage")}),
    )


def _mostly_canonical(name: str):
    return st.one_of(CANONICAL[name], CANONICAL[name], CANONICAL[name], NEAR_MISS[name])


CANONICAL_RECORD = _record(CANONICAL.get)
# Mostly canonical fields, now and then a near miss (alone: where the fast path could be too lenient);
# usage with token fields; an unknown field; no model.
ONE_NEAR_MISS = st.sampled_from(list(NEAR_MISS)).flatmap(lambda name: st.tuples(st.just(name), NEAR_MISS[name]))
MIXED_RECORD = st.one_of(
    _record(_mostly_canonical),
    _record(_mostly_canonical),
    st.builds(lambda record, near_miss: dict([*record.items(), near_miss]), CANONICAL_RECORD, ONE_NEAR_MISS),
    st.fixed_dictionaries(
        {"model_name": _mostly_canonical("model_name")},
        optional={
            **{name: _mostly_canonical(name) for name in CANONICAL if name != "model_name"},
            "promt_tokens": st.integers(0, 9),
        },
    ),
    st.fixed_dictionaries({}, optional={"prompt_tokens": TOKENS, "purpose": CANONICAL["purpose"]}),
    st.sampled_from([None, [], "record", 5]),
)


def _drf_validated(records: list) -> tuple[str, list | dict]:
    """What DRF's own ListSerializer makes of the records (errors keyed by index, as
    LIST_SERIALIZER_ERRORS_AS_DICT has it): the reference for the fast path."""
    results, errors = [], {}
    for index, record in enumerate(records):
        try:
            results.append(UsageRecordSerializer().run_validation(record))
        except serializers.ValidationError as exc:
            errors[index] = exc.detail
    return ("invalid", errors) if errors else ("valid", results)


def _fast_validated(records: list) -> tuple[str, list | dict]:
    batch = UsageRecordSerializer(data=records, many=True)
    assert isinstance(batch, FastListSerializer)
    if batch.is_valid():
        return "valid", list(batch.validated_data)
    return "invalid", dict(batch.errors)


def _spy(cls, method: str):
    """Counts the calls of a DRF method and lets them through. Only DRF's base classes are spied on:
    FastListSerializer compiles a serializer only when its class keeps DRF's methods."""
    return mock.patch.object(cls, method, autospec=True, side_effect=getattr(cls, method))


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(records=st.lists(MIXED_RECORD, min_size=1, max_size=6))
def test_validation_gives_exactly_what_drf_gives(zone, records):
    with timezone.override(ZoneInfo(zone)):
        # Each record alone (its validated data), then the batch (errors under the records' indexes).
        for record in records:
            # repr: types, key order, Decimal exponents, time zones and error codes must match, not just ==.
            assert repr(_fast_validated([record])) == repr(_drf_validated([record]))
        assert repr(_fast_validated(records)) == repr(_drf_validated(records))


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(record=CANONICAL_RECORD)
def test_canonical_records_need_no_drf_field_machinery(zone, record):
    with timezone.override(ZoneInfo(zone)):
        expected = _drf_validated([record])
        with _spy(serializers.ListSerializer, "run_child_validation") as drf:  # FastListSerializer's fallback.
            actual = _fast_validated([record])
    assert repr(actual) == repr(expected)
    if expected[0] == "valid":
        assert drf.call_count == 0


NEAR_MISSES = [
    None,
    [],
    {},
    {"model_name": "gpt-4o", "promt_tokens": 5},
    {"model_name": "a\x00b"},
    {"model_name": "\ud800"},
    {"model_name": None},
    {"model_name": ["gpt-4o"]},
    {"model_name": "gpt-4o", "prompt_tokens": "many"},
    {"model_name": "gpt-4o", "prompt_tokens": 5.5},
    {"model_name": "gpt-4o", "prompt_tokens": None},
    {"model_name": "gpt-4o", "prompt_tokens": True},
    {"model_name": "gpt-4o", "user_id": False},
    {"model_name": "gpt-4o", "usage": None},
    {"model_name": "gpt-4o", "response_time": float("nan")},
    {"model_name": "gpt-4o", "response_time": 10**400},
    {"model_name": "gpt-4o", "success": "perhaps"},
    {"model_name": "gpt-4o", "timestamp": "yesterday"},
    {"model_name": "gpt-4o", "timestamp": "9999-12-31T23:59:59-14:00"},
    {"model_name": "gpt-4o", "cost": "NaN"},
    {"model_name": "gpt-4o", "cost": True},
]
# JSON types the serializer parses, refused by the record rules (usage.records) that usage_ingest
# applies to every caller: the fast path must parse them exactly as DRF does, and the rules refuse them.
BROKEN_RULES = [
    {"model_name": " "},
    {"model_name": "x" * 101},
    {"model_name": "gpt-4o", "prompt_tokens": -1},
    {"model_name": "gpt-4o", "prompt_tokens": MAX_TOKENS + 1},
    {"model_name": "gpt-4o", "user_id": 0},
    {"model_name": "gpt-4o", "cached_tokens": 3, "prompt_tokens": 2},
    {"model_name": "gpt-4o", "reasoning_tokens": 3, "completion_tokens": 2},
    {"model_name": "gpt-4o", "usage": {"prompt_tokens": 5}, "prompt_tokens": 5},
    {"model_name": "gpt-4o", "usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 6}}},
    {"model_name": "gpt-4o", "usage": {"completion_tokens": 5}},
    {"model_name": "gpt-4o", "response_time": -1},
    {"model_name": "gpt-4o", "timestamp": "2026-11-24T10:00:00"},
    {"model_name": "gpt-4o", "timestamp": "1999-12-31T23:59:59Z"},
    {"model_name": "gpt-4o", "cost": "-1"},
    {"model_name": "gpt-4o", "cost": "0.1234567890123456789012345"},
    {"model_name": "gpt-4o", "cost": "10000000000000000"},
]
# Valid, but only DRF knows how: the fast path hands them over and must not get in the way.
LENIENT = [
    {"model_name": 5, "prompt_tokens": "7", "completion_tokens": 3.0, "success": "true", "response_time": "1.5"},
    {"model_name": "gpt-4o", "cost": "  ", "user_id": None, "timestamp": datetime(2020, 1, 1, tzinfo=UTC)},
    {"model_name": "gpt-4o", "cost": 0.25, "success": 1},
]


@pytest.mark.parametrize(
    ("kind", "record"),
    [("near miss", r) for r in NEAR_MISSES]
    + [("broken rule", r) for r in BROKEN_RULES]
    + [("lenient", r) for r in LENIENT],
)
def test_each_kind_of_near_miss_gets_what_drf_gives(kind, record):
    batch = [{"model_name": "gpt-4o"}, record]
    expected = _drf_validated(batch)
    assert expected[0] == ("invalid" if kind == "near miss" else "valid")
    assert repr(_fast_validated(batch)) == repr(expected)
    if kind == "broken rule":
        with pytest.raises(UsageRecordInvalid) as refused:
            usage_records_validated([UsageRecordInput(**r) for r in expected[1]], now=timezone.now())
        assert refused.value.field.startswith("records[1].")


# --- Output: the stored records of the 201 response -------------------------------------------

StoredSerializer = UsageIngestApi.OutputSerializer.StoredSerializer


class LightStored(NamedTuple):
    """What usage_ingest may return instead of UsageLog rows: only these attributes count."""

    id: int
    model_name: str
    cost: Decimal | None
    cost_source: str
    timestamp: datetime | str | None
    sent_model_name: str = ""
    currency: str | None = None


CANONICAL_STORED_COST = st.one_of(
    st.none(), st.decimals(min_value=-1, max_value=Decimal("9999999999999999.999999999999999999999999"), places=24)
)
ODD_STORED_COST = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.sampled_from([Decimal("0.5"), Decimal("1E+2"), Decimal("-0E-8"), Decimal("1" * 21 + "E-8"), 0.25, 3, "0.1"]),
)
AWARE_TIMES = st.builds(
    lambda moment, zone: moment.replace(tzinfo=UTC).astimezone(zone),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),  # noqa: DTZ001
    st.one_of(OFFSETS, st.sampled_from([ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])),
)
ODD_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),  # noqa: DTZ001
    st.sampled_from(["2026-11-01T10:00:00Z", ""]),
)


def _stored_item(kind, id_, model_name, cost, cost_source, timestamp, currency=None):
    names = {"model_name": model_name, "sent_model_name": model_name}
    item = kind(id=id_, **names, cost=cost, cost_source=cost_source, timestamp=timestamp)
    if kind is UsageLog:
        item.currency = currency  # What the API adds to each stored row (the log has no such column).
        return item
    return item._replace(currency=currency)


CURRENCY = st.sampled_from([None, "USD", "CNY"])


CANONICAL_STORED = st.builds(
    _stored_item,
    st.sampled_from([LightStored, UsageLog]),
    st.integers(1, 2**62),
    st.text(max_size=12),
    CANONICAL_STORED_COST,
    st.sampled_from([CostSource.COMPUTED, CostSource.PROVIDER, CostSource.UNPRICED, "computed"]),
    AWARE_TIMES,
    CURRENCY,
)
ANY_STORED = st.one_of(
    CANONICAL_STORED,
    st.builds(
        _stored_item,
        st.sampled_from([LightStored, UsageLog]),
        st.integers(1, 2**62),
        st.text(max_size=12),
        st.one_of(CANONICAL_STORED_COST, ODD_STORED_COST),
        st.just(CostSource.COMPUTED),
        st.one_of(AWARE_TIMES, ODD_TIMES),
        CURRENCY,
    ),
)


def _written(render, items) -> str:
    try:
        return repr(render(items))
    except Exception as exc:  # DRF's own failure (a Decimal beyond max_digits) must be the same.
        return f"raised {exc!r}"


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(items=st.lists(ANY_STORED, max_size=5))
def test_stored_records_are_written_exactly_as_drf_writes_them(zone, items):
    drf = serializers.ListSerializer(child=StoredSerializer())
    with timezone.override(ZoneInfo(zone)):
        expected = _written(drf.to_representation, items)
        actual = _written(StoredSerializer(many=True).to_representation, items)
    assert actual == expected


@pytest.mark.parametrize("zone", ZONES)
@PROPERTY
@given(items=st.lists(CANONICAL_STORED, min_size=1, max_size=5))
def test_canonical_stored_records_need_no_drf_field_machinery(zone, items):
    with timezone.override(ZoneInfo(zone)):
        expected = serializers.ListSerializer(child=StoredSerializer()).to_representation(items)
        with (
            _spy(serializers.Field, "get_attribute") as record_spy,  # Serializer.to_representation's first step.
            _spy(serializers.DecimalField, "to_representation") as cost_spy,
            _spy(serializers.DateTimeField, "to_representation") as time_spy,
        ):
            actual = StoredSerializer(many=True).to_representation(items)
    assert repr(actual) == repr(expected)
    assert (record_spy.call_count, cost_spy.call_count, time_spy.call_count) == (0, 0, 0)


@pytest.mark.django_db
@override_settings(TIME_ZONE="Asia/Kolkata")
def test_the_201_response_writes_the_stored_rows_as_drf_does(writer):
    records = [
        {"model_name": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 500},
        {"model_name": " gpt-4o ", "usage": {"prompt_tokens": 2000, "completion_tokens": 100}, "cost": "0.5"},
        {"model_name": "my-finetune", "timestamp": "2026-11-01T10:00:00-08:00", "prompt_tokens": "7"},
    ]
    response = writer.post("/api/v1/usage/", records, format="json")
    assert response.status_code == 201, response.content
    logs = list(UsageLog.objects.order_by("id"))
    for log in logs:
        log.currency = None if log.cost is None else "USD"  # gpt-4o-mini and gpt-4o are priced in USD.
    expected = serializers.ListSerializer(child=StoredSerializer()).to_representation(logs)
    assert exact_json(response)["data"]["records"] == expected
    assert [row["timestamp"][-6:] for row in expected] == ["+05:30"] * 3
    assert [row["cost"] for row in expected][1:] == [Decimal("0.500000000000000000000000"), None]
    assert b'"cost":0.5,' in response.content  # The exact value as a JSON number, trailing zeros dropped.


@pytest.mark.django_db
def test_unknown_top_level_fields_are_still_refused(writer):
    response = writer.post("/api/v1/usage/", {"records": [{"model_name": "gpt-4o"}], "recrods": []}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "recrods"
