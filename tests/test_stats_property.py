"""Property: whatever the data, zone, window and filters, and whether the rollup rows were compacted
or are still delta rows (or some of each), every declared sum (usage.rollup_sums.ROLLUP_SUMS) of the answers
equals its sum over the raw log, worked out independently (tests/rollup_oracle.py)."""

import itertools
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.services import usage_record_batch
from tests.rollup_oracle import expected_sums, sums_of
from usage.models import UsageIdempotencyKey, UsageLog
from usage.rollups import GRAINS, rollups_compact
from usage.services import UsageRecordInput
from usage.window_sums import (
    UsageFilters,
    usage_sums_by_local_day,
    usage_sums_by_model,
    usage_sums_by_window,
    usage_totals_by_window,
    window_terms,
)

# Around the 2026 DST changes of New York and Lord Howe (a 30-minute DST), crossing UTC midnights.
BASE = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
SPAN_MINUTES = 4 * 24 * 60
MODELS = ["gpt-4o", "gpt-4o-mini", "deepseek-chat", "not-in-pricing"]
ZONES = [
    "UTC",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]


# (part, whole): cached tokens are part of the prompt's, reasoning tokens part of the completion's.
def _part_of(largest: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(0, largest), st.integers(0, largest)).map(sorted)


records = st.lists(
    st.builds(
        lambda model, second, success, prompt, completion, response_time, user_id, purpose, provider_cost: (
            UsageRecordInput(
                model_name=model,
                timestamp=BASE + timedelta(seconds=second),
                success=success,
                cached_tokens=prompt[0],
                prompt_tokens=prompt[1],
                reasoning_tokens=completion[0],
                completion_tokens=completion[1],
                response_time=response_time,
                user_id=user_id,
                purpose=purpose,
                cost=provider_cost,
            )
        ),
        model=st.sampled_from(MODELS),
        second=st.integers(0, SPAN_MINUTES * 60 - 1),
        success=st.booleans(),
        prompt=_part_of(50_000),
        completion=_part_of(10_000),
        response_time=st.one_of(st.none(), st.floats(0, 30, allow_nan=False).map(lambda f: round(f, 3))),
        user_id=st.one_of(st.none(), st.integers(1, 3)),
        purpose=st.sampled_from(["", "chat", "batch"]),
        provider_cost=st.one_of(st.none(), st.decimals("0", "5", places=8, allow_nan=False)),
    ),
    max_size=60,
)
filters = st.one_of(
    st.just(UsageFilters()),
    st.builds(lambda m: UsageFilters(model_names=frozenset(m)), st.sets(st.sampled_from(MODELS), max_size=2)),
    st.builds(lambda u: UsageFilters(user_id=u), st.integers(1, 3)),
    st.builds(lambda p: UsageFilters(purpose=p), st.sampled_from(["chat", "batch"])),
)


def _reset() -> None:
    for model in (UsageLog, UsageIdempotencyKey, *(grain.model for grain in GRAINS)):
        model.objects.all().delete()


# Where the recorded sums sit when the answer is read: all in delta rows (not yet compacted), the
# first part compacted and the rest in delta rows, or all compacted.
NOT_COMPACTED, SPLIT, COMPACTED = "not yet compacted", "split", "compacted"
placements = st.sampled_from([NOT_COMPACTED, SPLIT, COMPACTED])


@pytest.fixture
def no_background_compaction(settings):
    """No compactor thread: the tests compact explicitly, as `placement` says."""
    settings.AICOST_ROLLUP_COMPACT_SECONDS = math.inf


def _rows_of_kind(*, compacted: bool) -> bool:
    return any(grain.model.objects.filter(compacted=compacted).exists() for grain in GRAINS)


def _record(batch: list, split: int, placement: str) -> None:
    """Record the batch in two parts, and compact as `placement` says."""
    usage_record_batch(records=batch[:split])
    if placement == SPLIT:
        rollups_compact()
    usage_record_batch(records=batch[split:])
    if placement == COMPACTED:
        rollups_compact()
    assert (_rows_of_kind(compacted=False), _rows_of_kind(compacted=True)) == {
        NOT_COMPACTED: (bool(batch), False),
        SPLIT: (bool(batch[split:]), bool(batch[:split])),
        COMPACTED: (False, bool(batch)),
    }[placement]


def _matches(log: UsageLog, chosen: UsageFilters) -> bool:
    return (
        (chosen.model_names is None or log.model_name in chosen.model_names)
        and (chosen.user_id is None or log.user_id == chosen.user_id)
        and (chosen.purpose is None or log.purpose == chosen.purpose)
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("no_background_compaction")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=records,
    start_second=st.one_of(st.none(), st.integers(-3600, SPAN_MINUTES * 60)),
    length_seconds=st.integers(1, SPAN_MINUTES * 60),
    chosen=filters,
    split=st.integers(0, 60),
    placement=placements,
)
def test_window_sums_equal_the_raw_log(batch, start_second, length_seconds, chosen, split, placement):
    _reset()
    _record(batch, split, placement)
    start = None if start_second is None else BASE + timedelta(seconds=start_second, microseconds=start_second % 997)
    end = (start or BASE) + timedelta(seconds=length_seconds)
    sums = usage_sums_by_model(start=start, end=end, filters=chosen)
    in_window = defaultdict(list)
    for log in UsageLog.objects.all():
        if (start is None or log.timestamp >= start) and log.timestamp < end and _matches(log, chosen):
            in_window[log.model_name].append(log)
    assert {name: sums_of(s) for name, s in sums.items() if s.calls} == {
        name: expected_sums(logs) for name, logs in in_window.items()
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("no_background_compaction")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=records,
    zone_name=st.sampled_from(ZONES),
    days=st.integers(1, 5),
    chosen=filters,
    split=st.integers(0, 60),
    placement=placements,
)
def test_local_day_sums_equal_the_raw_log(batch, zone_name, days, chosen, split, placement):
    _reset()
    _record(batch, split, placement)
    zone = ZoneInfo(zone_name)
    first_day = BASE.astimezone(zone).date()
    sums = usage_sums_by_local_day(first_day=first_day, days=days, zone=zone, filters=chosen)
    by_day = defaultdict(list)
    for log in UsageLog.objects.all():
        local_day = log.timestamp.astimezone(zone).date()
        if first_day <= local_day < first_day + timedelta(days=days) and _matches(log, chosen):
            by_day[local_day].append(log)
    assert {day: sums_of(s) for day, s in sums.items() if s.calls} == {
        day: expected_sums(logs) for day, logs in by_day.items()
    }


# Boundaries of the read path: local midnights of a zone (quarter-aligned, or not: Kathmandu's are
# off the hour), quarter hours, or any microsecond.
def _moment(kind: str, zone_name: str, seconds: int, microseconds: int) -> datetime:
    moment = BASE + timedelta(seconds=seconds)
    if kind == "local midnight":
        local = moment.astimezone(ZoneInfo(zone_name))
        return datetime.combine(local.date(), datetime.min.time(), tzinfo=ZoneInfo(zone_name))
    if kind == "quarter hour":
        return moment - timedelta(seconds=seconds % 900)
    return (moment + timedelta(microseconds=microseconds)).astimezone(ZoneInfo(zone_name))


moments = st.builds(
    _moment,
    st.sampled_from(["local midnight", "quarter hour", "any"]),
    st.sampled_from(ZONES),
    st.integers(-3600, SPAN_MINUTES * 60 + 3600),
    st.integers(0, 999_999),
)
boundary_lists = st.lists(moments, min_size=2, max_size=7).map(sorted)


@pytest.mark.django_db
@pytest.mark.usefixtures("no_background_compaction")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=records, boundaries=boundary_lists, chosen=filters, split=st.integers(0, 60), placement=placements)
def test_read_path_over_any_boundaries_equals_the_raw_log(batch, boundaries, chosen, split, placement):
    """Every window [b_k, b_k+1), per model and over all models, sums what the log holds in it."""
    _reset()
    _record(batch, split, placement)
    by_model = usage_sums_by_window(boundaries=boundaries, filters=chosen)
    totals = usage_totals_by_window(boundaries=boundaries, filters=chosen)
    logs = [log for log in UsageLog.objects.all() if _matches(log, chosen)]
    assert len(by_model) == len(totals) == len(boundaries) - 1
    for start, end, models, total in zip(boundaries, boundaries[1:], by_model, totals, strict=False):
        in_window = [log for log in logs if start <= log.timestamp < end]
        per_model = defaultdict(list)
        for log in in_window:
            per_model[log.model_name].append(log)
        assert {name: sums_of(s) for name, s in models.items()} == {
            name: expected_sums(rows) for name, rows in per_model.items()
        }
        assert sums_of(total) == expected_sums(in_window)


def _coverage(terms: dict) -> dict[datetime, int]:
    """How often the signed terms count each instant: the change of the count at each instant."""
    changes: Counter = Counter()
    for term, sign in terms.items():
        if term[0] == "log":
            start, end = term[1], term[2]
        elif term[0] == "prefix":  # The first minutes of an hour.
            start = datetime.fromtimestamp(term[1], UTC)
            end = start + timedelta(minutes=term[2])
        elif term[0] == "hours+prefix":  # Whole hours up to the last, and the last one's first minutes.
            start = datetime.fromtimestamp(term[1], UTC)
            end = datetime.fromtimestamp(term[2], UTC) + timedelta(minutes=term[3])
        else:  # day, hour: [first, last)
            start, end = datetime.fromtimestamp(term[1], UTC), datetime.fromtimestamp(term[2], UTC)
        changes[start] += sign
        changes[end] -= sign
    return changes


@settings(max_examples=500, deadline=None)
@given(boundaries=boundary_lists)
def test_window_terms_count_each_instant_of_the_window_once(boundaries):
    """The signed terms of each window [b_n, b_n+1) add up to exactly it, wherever the boundaries fall
    in their UTC day (before or after noon, on or off the hour or the quarter hour)."""
    for start, end in itertools.pairwise(boundaries):
        changes = _coverage(window_terms(start, end))
        if start < end:
            assert start in changes
            assert end in changes
        count = 0
        for moment in sorted(changes):  # The count holds from each moment to the next.
            count += changes[moment]
            assert count == (1 if start <= moment < end else 0), (moment, count)
