"""The record rules are the service's (usage.records): a Python caller of usage_record /
usage_record_batch gets, for each rule, the very error an HTTP caller of POST /api/v1/usage/ gets,
and nothing is stored. The database refuses what slips past: negative tokens or costs, cached
above prompt tokens, reasoning above completion tokens (CHECK constraints on the log)."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.services import usage_record, usage_record_batch
from usage.models import UsageCounter, UsageLog
from usage.records import (
    COMPLETION_PARTS_EXCEED,
    EARLIEST_CALL,
    LATEST_CLOCK_SKEW,
    MAX_TOKENS,
    PROMPT_PARTS_EXCEED,
    PlausibleWindow,
    UsageRecordInput,
    UsageRecordInvalid,
    _plain,
    usage_record_validated,
)
from usage.usage_objects import KNOWN_OBJECTS

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage/"
BASE = {"model_name": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 500}
NAIVE = "Timestamp must include a time zone offset, e.g. 2026-11-24T10:00:00Z."
IMPLAUSIBLE = "Timestamp must lie between 2000-01-01 and one day after the server's current time."
AT_LEAST_0 = "Ensure this value is greater than or equal to 0."


def _far_ahead() -> datetime:
    return timezone.now() + timedelta(days=2)


# (rule, JSON overrides, Python overrides (None: the same values), field, message)
RULES = [
    ("negative prompt tokens", {"prompt_tokens": -1}, None, "prompt_tokens", AT_LEAST_0),
    ("negative completion tokens", {"completion_tokens": -5}, None, "completion_tokens", AT_LEAST_0),
    ("negative cached tokens", {"cached_tokens": -1}, None, "cached_tokens", AT_LEAST_0),
    ("negative reasoning tokens", {"reasoning_tokens": -1}, None, "reasoning_tokens", AT_LEAST_0),
    (
        "tokens beyond an integer column",
        {"completion_tokens": MAX_TOKENS + 1},
        None,
        "completion_tokens",
        f"Ensure this value is less than or equal to {MAX_TOKENS}.",
    ),
    ("cached above prompt", {"cached_tokens": 1001}, None, "cached_tokens", "Cannot exceed prompt_tokens."),
    (
        "reasoning above completion",
        {"reasoning_tokens": 501},
        None,
        "reasoning_tokens",
        "Cannot exceed completion_tokens.",
    ),
    (
        "usage with token fields",
        {"usage": {"prompt_tokens": 5}},
        None,
        "usage",
        "Give either usage or prompt_tokens, completion_tokens, not both.",
    ),
    (
        "usage without prompt tokens",
        {"prompt_tokens": None, "completion_tokens": None, "usage": {"completion_tokens": 5}},
        None,
        "usage.prompt_tokens",
        "This field is required.",
    ),
    (
        "usage with cached above prompt",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 6}},
        },
        None,
        "usage.prompt_tokens_details.cached_tokens",
        "Cannot exceed usage.prompt_tokens.",
    ),
    (
        "usage with negative reasoning tokens",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {"prompt_tokens": 5, "completion_tokens_details": {"reasoning_tokens": -1}},
        },
        None,
        "usage.completion_tokens_details.reasoning_tokens",
        AT_LEAST_0,
    ),
    ("negative 5-minute cache writes", {"cache_write_5m_tokens": -1}, None, "cache_write_5m_tokens", AT_LEAST_0),
    ("negative 1-hour cache writes", {"cache_write_1h_tokens": -1}, None, "cache_write_1h_tokens", AT_LEAST_0),
    ("negative input audio", {"input_audio_tokens": -1}, None, "input_audio_tokens", AT_LEAST_0),
    ("negative output audio", {"output_audio_tokens": -1}, None, "output_audio_tokens", AT_LEAST_0),
    ("negative output images", {"output_image_tokens": -1}, None, "output_image_tokens", AT_LEAST_0),
    (
        "the prompt's parts above prompt",
        {"cached_tokens": 400, "cache_write_5m_tokens": 300, "cache_write_1h_tokens": 301, "input_audio_tokens": 0},
        None,
        "cache_write_1h_tokens",
        PROMPT_PARTS_EXCEED,
    ),
    (
        "input audio takes the prompt's parts above prompt",
        {"cached_tokens": 1000, "input_audio_tokens": 1},
        None,
        "input_audio_tokens",
        PROMPT_PARTS_EXCEED,
    ),
    (
        "the completion's parts above completion",
        {"reasoning_tokens": 100, "output_audio_tokens": 300, "output_image_tokens": 101},
        None,
        "output_image_tokens",
        COMPLETION_PARTS_EXCEED,
    ),
    (
        "usage with the new kinds as well",
        {"prompt_tokens": None, "completion_tokens": None, "input_audio_tokens": 1, "usage": {"prompt_tokens": 5}},
        None,
        "usage",
        "Give either usage or input_audio_tokens, not both.",
    ),
    (
        "usage with an unknown key",
        {"prompt_tokens": None, "completion_tokens": None, "usage": {"prompt_tokens": 5, "image_tokens": 3}},
        None,
        "usage.image_tokens",
        "Unknown field of an OpenAI Chat Completions (or DeepSeek) usage object.",
    ),
    (
        "usage of no known provider",
        {"prompt_tokens": None, "completion_tokens": None, "usage": {"tokens": 5}},
        None,
        "usage",
        KNOWN_OBJECTS,
    ),
    (
        "DeepSeek hits and misses that do not add up",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {"prompt_tokens": 100, "prompt_cache_hit_tokens": 60, "prompt_cache_miss_tokens": 50},
        },
        None,
        "usage.prompt_cache_hit_tokens",
        "prompt_cache_hit_tokens + prompt_cache_miss_tokens must equal prompt_tokens (100).",
    ),
    (
        "Anthropic cache writes split inconsistently",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_creation_input_tokens": 100,
                "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 50},
            },
        },
        None,
        "usage.cache_creation.ephemeral_1h_input_tokens",
        "ephemeral_5m_input_tokens + ephemeral_1h_input_tokens must equal cache_creation_input_tokens (100).",
    ),
    (
        "Anthropic negative cache reads",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": -3},
        },
        None,
        "usage.cache_read_input_tokens",
        AT_LEAST_0,
    ),
    (
        "Gemini cached content above the prompt",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {"promptTokenCount": 10, "cachedContentTokenCount": 11, "candidatesTokenCount": 3},
        },
        None,
        "usage.cachedContentTokenCount",
        "Cannot exceed usage.promptTokenCount.",
    ),
    (
        "Responses reasoning above output",
        {
            "prompt_tokens": None,
            "completion_tokens": None,
            "usage": {"input_tokens": 10, "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 4}},
        },
        None,
        "usage.output_tokens_details.reasoning_tokens",
        "Cannot exceed usage.output_tokens.",
    ),
    (
        "naive timestamp",
        {"timestamp": "2026-11-24T10:00:00"},
        {"timestamp": datetime(2026, 11, 24, 10)},  # noqa: DTZ001 -- naive on purpose
        "timestamp",
        NAIVE,
    ),
    (
        "timestamp before 2000",
        {"timestamp": "1999-12-31T23:59:59Z"},
        {"timestamp": datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)},
        "timestamp",
        IMPLAUSIBLE,
    ),
    ("timestamp days ahead", {"timestamp": "FAR_AHEAD"}, {"timestamp": "FAR_AHEAD"}, "timestamp", IMPLAUSIBLE),
    ("blank model name", {"model_name": "  "}, None, "model_name", "This field may not be blank."),
    (
        "long model name",
        {"model_name": "m" * 101},
        None,
        "model_name",
        "Ensure this field has no more than 100 characters.",
    ),
    (
        "long decision id",
        {"decision_id": "d" * 101},
        None,
        "decision_id",
        "Ensure this field has no more than 100 characters.",
    ),
    (
        "long idempotency key",
        {"idempotency_key": "k" * 101},
        None,
        "idempotency_key",
        "Ensure this field has no more than 100 characters.",
    ),
    ("long purpose", {"purpose": "p" * 101}, None, "purpose", "Ensure this field has no more than 100 characters."),
    (
        "long error message",
        {"error_message": "e" * 10_001},
        None,
        "error_message",
        "Ensure this field has no more than 10000 characters.",
    ),
    ("user id 0", {"user_id": 0}, None, "user_id", "Ensure this value is greater than or equal to 1."),
    ("negative response time", {"response_time": -0.5}, None, "response_time", AT_LEAST_0),
    (
        "response time over a day",
        {"response_time": 86_401},
        None,
        "response_time",
        "Ensure this value is less than or equal to 86400.",
    ),
    ("negative cost", {"cost": "-0.01"}, {"cost": Decimal("-0.01")}, "cost", AT_LEAST_0),
    (
        "cost finer than stored",
        {"cost": "0.1234567890123456789012345"},
        {"cost": Decimal("0.1234567890123456789012345")},
        "cost",
        "Ensure that there are no more than 24 decimal places.",
    ),
    (
        "cost too large",
        {"cost": "10000000000000000"},
        {"cost": Decimal("10000000000000000")},
        "cost",
        "Ensure that there are no more than 16 digits before the decimal point.",
    ),
]


def _fields(overrides: dict) -> dict:
    fields = {**BASE, **overrides}
    if fields.get("timestamp") == "FAR_AHEAD":
        fields["timestamp"] = _far_ahead()
    return {name: value for name, value in fields.items() if value is not None}


def _as_json(fields: dict) -> dict:
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in fields.items()}


@pytest.mark.parametrize(
    ("json_overrides", "python_overrides", "field", "message"),
    [pytest.param(*rule[1:], id=rule[0]) for rule in RULES],
)
def test_python_and_http_callers_get_the_same_error_for_each_rule(
    writer, json_overrides, python_overrides, field, message
):
    record = _fields(json_overrides)
    response = writer.post(URL, [BASE, _as_json(record)], format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["field"], error["message"]) == (f"records[1].{field}", f"records[1].{field}: {message}")

    kwargs = _fields(python_overrides if python_overrides is not None else json_overrides)
    with pytest.raises(UsageRecordInvalid) as batch_error:
        usage_record_batch(records=[UsageRecordInput(**BASE), UsageRecordInput(**kwargs)])
    assert (batch_error.value.field, str(batch_error.value)) == (error["field"], error["message"])
    with pytest.raises(UsageRecordInvalid) as one_error:
        usage_record(**kwargs)
    assert (one_error.value.field, str(one_error.value)) == (field, f"{field}: {message}")
    assert one_error.value.message_dict == {field: [message]}  # A Django ValidationError too.

    assert not UsageLog.objects.exists()
    assert UsageCounter.objects.get(model_name="gpt-4o-mini").total_calls == 0


def test_python_callers_get_the_openai_usage_mapping_and_trimmed_names():
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }
    log = usage_record(model_name=" gpt-4o ", usage=usage)
    assert (log.model_name, log.prompt_tokens, log.completion_tokens, log.cached_tokens, log.reasoning_tokens) == (
        "gpt-4o",
        2000,
        100,
        1024,
        40,
    )
    assert log.cost == Decimal("0.00472000")  # Priced as the API prices it (tests/test_usage_api.py).


def test_a_cost_is_never_negative_however_the_record_came():
    # Before the rules moved into the service, cached > prompt stored a negative cost from Python.
    with pytest.raises(UsageRecordInvalid):
        usage_record(model_name="gpt-4o", prompt_tokens=10, cached_tokens=1_000_000)
    assert not UsageLog.objects.filter(cost__lt=0).exists()


def test_python_types_the_json_parser_would_have_refused_are_named():
    for kwargs, field in [
        ({"prompt_tokens": "5"}, "prompt_tokens"),
        ({"prompt_tokens": True}, "prompt_tokens"),
        ({"cost": 0.5}, "cost"),
        ({"success": "yes"}, "success"),
        ({"model_name": 5}, "model_name"),
        ({"timestamp": "2026-11-24T10:00:00Z"}, "timestamp"),
        ({"usage": [1, 2]}, "usage"),
    ]:
        with pytest.raises(UsageRecordInvalid) as error:
            usage_record(**{"model_name": "gpt-4o", **kwargs})
        assert error.value.field == field, kwargs


LOG_COLUMNS = (
    '"timestamp", model_name, decision_id, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, '
    "cost, cost_source, success, error_message, purpose, response_time"
)


NEW_KINDS = ("cache_write_5m_tokens", "cache_write_1h_tokens", "input_audio_tokens", "output_audio_tokens")
NEW_KINDS += ("output_image_tokens",)


def _raw_insert(*, before_conversion: bool = False, **values) -> None:
    """A row as raw SQL writes it; the newer token kinds only when given (the columns default to 0),
    and its cost in the reporting currency (gpt-4o's, USD: the same) unless the log predates it."""
    if not before_conversion:
        values.setdefault("reporting_cost", values.get("cost", Decimal("0.1")))
    row = {
        "prompt_tokens": 10,
        "completion_tokens": 10,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost": Decimal("0.1"),
        "response_time": 1.0,
        **values,
    }
    kinds = [name for name in (*NEW_KINDS, "reporting_cost") if name in values]
    columns = ", ".join([LOG_COLUMNS, *kinds])
    placeholders = "".join(", %s" for _ in kinds)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO ai_model_usage_log ({columns}) "  # noqa: S608 -- constant columns
            f"VALUES (%s, 'gpt-4o', '', %s, %s, %s, %s, %s, 'provider', true, '', '', %s{placeholders})",
            [
                timezone.now(),
                row["prompt_tokens"],
                row["completion_tokens"],
                row["cached_tokens"],
                row["reasoning_tokens"],
                row["cost"],
                row["response_time"],
                *(row[name] for name in kinds),
            ],
        )


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        # A negative total is below its part (0) as well: either constraint may be the one named.
        ({"prompt_tokens": -1}, "ai_model_usage_log_(prompt_tokens_check|cached_within_prompt)"),
        ({"completion_tokens": -1}, "ai_model_usage_log_(completion_tokens_check|reasoning_within_completion)"),
        ({"cached_tokens": -1}, "ai_model_usage_log_cached_tokens_check"),
        ({"reasoning_tokens": -1}, "ai_model_usage_log_reasoning_tokens_check"),
        ({"cost": Decimal("-0.00000001")}, "ai_model_usage_log_cost_check"),
        ({"response_time": -0.1}, "ai_model_usage_log_response_time_check"),
        ({"cached_tokens": 11}, "ai_model_usage_log_(cached_within_prompt|input_parts_within_prompt)"),
        ({"reasoning_tokens": 11}, "ai_model_usage_log_(reasoning_within_completion|output_parts_within_completion)"),
        *(({name: -1}, f"ai_model_usage_log_{name}_check") for name in NEW_KINDS),
        ({"cached_tokens": 5, "cache_write_1h_tokens": 6}, "ai_model_usage_log_input_parts_within_prompt"),
        ({"cache_write_5m_tokens": 4, "input_audio_tokens": 7}, "ai_model_usage_log_input_parts_within_prompt"),
        ({"reasoning_tokens": 5, "output_image_tokens": 6}, "ai_model_usage_log_output_parts_within_completion"),
        ({"output_audio_tokens": 11}, "ai_model_usage_log_output_parts_within_completion"),
    ],
)
def test_the_database_refuses_what_a_raw_insert_would_store(values, constraint):
    usage_record(model_name="gpt-4o", prompt_tokens=1)  # Makes sure this month's partition exists.
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        _raw_insert(**values)
    _raw_insert(cost=None, response_time=None)  # NULL cost (unpriced) and response time are fine.
    assert UsageLog.objects.count() == 2


# --- The one-pass check of plain records (usage.records._plain) agrees with the rules ---------------

TEXT = st.one_of(
    st.sampled_from(["", "gpt-4o", " gpt-4o", "gpt-4o\t", "a\x00b", "\x1f", "é", "\ud800", "x" * 100, "x" * 101]),
    st.text(max_size=12),
    st.integers(0, 3),
    st.none(),
)
TOKENS = st.one_of(st.none(), st.integers(-2, 3000), st.sampled_from([MAX_TOKENS, MAX_TOKENS + 1, True, 5.0, "5"]))
MOMENTS = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1999, 12, 31),  # noqa: DTZ001 -- bounds of generated naive values
        max_value=datetime(2030, 1, 1),  # noqa: DTZ001
        timezones=st.one_of(st.none(), st.just(UTC), st.timezones()),
    ),
)
FIELDS = {
    "model_name": TEXT,
    "prompt_tokens": TOKENS,
    "completion_tokens": TOKENS,
    "cached_tokens": TOKENS,
    "reasoning_tokens": TOKENS,
    # The newer kinds: mostly absent (the common path), else small parts or near misses.
    **{name: st.one_of(st.none(), st.none(), TOKENS) for name in NEW_KINDS},
    "usage": st.one_of(st.none(), st.just({"prompt_tokens": 5})),
    "decision_id": TEXT,
    "idempotency_key": TEXT,
    "user_id": st.one_of(st.none(), st.integers(-1, 3), st.just(MAX_TOKENS + 1), st.just(False)),
    "response_time": st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-1, 90_000), st.just(86_400.5)),
    "success": st.one_of(st.booleans(), st.just(1)),
    "error_message": TEXT,
    "purpose": TEXT,
    "timestamp": MOMENTS,
    "cost": st.one_of(st.none(), st.just(Decimal("0.5"))),
}
PLAIN = {
    "model_name": "gpt-4o",
    "prompt_tokens": 2000,
    "completion_tokens": 1000,
    "decision_id": "d-1",
    "user_id": 7,
    "response_time": 1.5,
}
# A plain record with a few fields drawn from everything a caller may pass, canonical or not: where
# the one-pass check could be more lenient than the rules.
RECORDS = st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: FIELDS[name] for name in names}).map(
        lambda drawn: UsageRecordInput(**{**PLAIN, **drawn})
    )
)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(record=RECORDS)
def test_the_one_pass_check_gives_what_the_rules_give_or_leaves_the_record_to_them(record):
    now = timezone.now()
    plain = _plain(record, PlausibleWindow(now + LATEST_CLOCK_SKEW))
    if plain is None:
        return
    assert repr(plain) == repr(usage_record_validated(record, now=now))


def test_plain_records_take_the_one_pass_check():
    record = UsageRecordInput(
        model_name="gpt-4o", prompt_tokens=10, cached_tokens=4, user_id=3, response_time=1.5, timestamp=timezone.now()
    )
    now = timezone.now()
    assert _plain(record, PlausibleWindow(now + LATEST_CLOCK_SKEW)) == usage_record_validated(record, now=now)
    with_kinds = UsageRecordInput(
        model_name="claude-sonnet-4",
        prompt_tokens=100,
        cached_tokens=40,
        cache_write_5m_tokens=30,
        cache_write_1h_tokens=20,
        input_audio_tokens=10,
        completion_tokens=9,
        reasoning_tokens=3,
        output_audio_tokens=3,
        output_image_tokens=3,
    )
    plain = _plain(with_kinds, PlausibleWindow(now + LATEST_CLOCK_SKEW))
    assert plain is not None
    assert plain == usage_record_validated(with_kinds, now=now)
    assert (plain.cache_write_1h_tokens, plain.output_image_tokens) == (20, 3)


def test_the_check_migration_names_old_rows_that_break_the_rules_and_stops():
    from django.core.management.base import CommandError
    from django.db.migrations.executor import MigrationExecutor

    usage_record(model_name="gpt-4o", prompt_tokens=10)
    MigrationExecutor(connection).migrate([("usage", "0008_usage_log_gap")])
    _raw_insert(cost=Decimal("-1"), before_conversion=True)  # What a Python caller could store before the rules moved.
    _raw_insert(cached_tokens=50, before_conversion=True)
    with pytest.raises(CommandError) as stopped:
        MigrationExecutor(connection).migrate([("usage", "0009_usage_log_checks")])
    assert "1 row(s) with a negative cost" in str(stopped.value)
    assert "1 row(s) with cached_tokens above prompt_tokens" in str(stopped.value)
    UsageLog.objects.filter(cost__lt=0).delete()
    UsageLog.objects.filter(cached_tokens__gt=10).delete()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    with pytest.raises(IntegrityError, match="ai_model_usage_log_cost_check"), transaction.atomic():
        _raw_insert(cost=Decimal("-1"))


EDGE_ZONES = [
    UTC,
    ZoneInfo("UTC"),
    ZoneInfo("Etc/UTC"),
    dt_timezone(timedelta(hours=5, minutes=30)),
    ZoneInfo("America/New_York"),
]


@pytest.mark.parametrize("zone", EDGE_ZONES, ids=str)
def test_the_one_pass_check_is_exact_at_the_edges_of_the_plausible_window(zone):
    now = timezone.now()
    window = PlausibleWindow(now + LATEST_CLOCK_SKEW)
    tick = timedelta(microseconds=1)
    for moment in (EARLIEST_CALL - tick, EARLIEST_CALL, now + LATEST_CLOCK_SKEW, now + LATEST_CLOCK_SKEW + tick):
        record = UsageRecordInput(model_name="gpt-4o", timestamp=moment.astimezone(zone))
        try:
            expected = repr(usage_record_validated(record, now=now))
        except UsageRecordInvalid:
            expected = None
        plain = _plain(record, window)
        # Both ways exact: bounds moved into a fixed zone, or compared across zones for the others.
        assert (None if plain is None else repr(plain)) == expected, moment
