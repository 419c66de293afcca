"""Breakdowns by group_by (issue 17 points 1 and 7): the stats, the stacked trend and the export per
model, provider, user, purpose and API key, each checked against an oracle computed here from the log's
rows in Python (not the SQL GROUP BY the service runs)."""

import csv
import io
import json
import random
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.money import money_display
from ingest.services import usage_record, usage_record_batch
from pricing.models import ModelPricing
from tests.api_helpers import HttpsApiClient, api_client_with_key, exact_json
from tests.fx_scenario import model_priced
from tests.sqlite_process import sqlite_python
from usage.keys import api_key_create, api_key_revoke
from usage.models import ApiKey, ApiKeyScope, UsageLog
from usage.records import TOKEN_FIELDS
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db
STATS = "/api/v1/ai-platforms/stats"
TREND = "/api/v1/ai-platforms/cost-trend-daily"
EXPORT = "/api/v1/usage/export.csv"
GROUP_BYS = ("model", "provider", "user_id", "purpose", "api_key")
KEY_NAMES = ("web app", "=cron")  # The second is revoked once it has sent its calls; its name looks like a formula.
MODELS = ("gpt-4o", "gpt-4o-mini", "deepseek-chat", "claude-sonnet-4-5", "llama-local", "cny-chat")
PURPOSES = ("summarise", "extract", "=sum(A1)", "", "摘要")
TOKEN_NAMES = TOKEN_FIELDS


def _seed(now: datetime, calls: int = 300) -> None:
    """Calls over the last 20 days: priced USD models of three providers, an unknown model (unpriced)
    and a CNY model with no rate into USD (unconverted), users 1-7 and none, five purposes and none;
    a third sent through the API by each of two keys (the second revoked since), a third recorded
    from Python (no key)."""
    model_priced("cny-chat", "CNY", "2", "8", now)
    rng = random.Random(17)
    records = []
    for n in range(calls):
        prompt = rng.randrange(0, 200_000)
        completion = rng.randrange(0, 50_000)
        records.append(
            {
                "model_name": rng.choice(MODELS),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cached_tokens": rng.randrange(0, prompt + 1) // 2,
                "reasoning_tokens": rng.randrange(0, completion + 1) // 2,
                "user_id": rng.choice([1, 2, 3, 4, 5, 6, 7, None]),
                "purpose": rng.choice(PURPOSES),
                "success": rng.random() > 0.2,
                "response_time": rng.random() * 3,
                "timestamp": now - timedelta(seconds=rng.randrange(0, 20 * 86_400)) if n else now - timedelta(days=8),
            }
        )
    for position, name in enumerate(KEY_NAMES):
        api_key, raw_key = api_key_create(name=name, scope=ApiKeyScope.WRITE_USAGE)
        sent = [{**record, "timestamp": record["timestamp"].isoformat()} for record in records[position::3]]
        response = _sender(raw_key).post("/api/v1/usage/", {"records": sent}, format="json")
        assert response.status_code == 201, response.content[:500]
        if position == 1:
            api_key_revoke(api_key=api_key)
    usage_record_batch(records=[UsageRecordInput(**record) for record in records[2::3]])


def _sender(raw_key: str) -> HttpsApiClient:
    client = HttpsApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


# --- The oracle: the log's rows grouped in Python ---------------------------------------------------


def _key_of(group_by: str, row: UsageLog, providers: dict) -> object:
    if group_by == "model":
        return row.model_name
    if group_by == "provider":
        return providers.get(row.model_name, "unknown")
    if group_by == "user_id":
        return row.user_id
    if group_by == "api_key":
        return row.api_key_id
    return row.purpose or None


def _rows(*, start=None, end=None, model=None, provider=None, user_id=None, purpose=None) -> list[UsageLog]:
    providers = dict(ModelPricing.objects.values_list("model_name", "provider"))
    rows = []
    for row in UsageLog.objects.all():
        if (start is not None and row.timestamp < start) or (end is not None and row.timestamp >= end):
            continue
        if model is not None and row.model_name != model:
            continue
        if provider is not None and providers.get(row.model_name) != provider:
            continue
        if user_id is not None and row.user_id != user_id:
            continue
        if purpose is not None and row.purpose != purpose:
            continue
        rows.append(row)
    return rows


def _oracle(group_by: str, rows: list[UsageLog]) -> list[tuple[object, dict]]:
    """(key, sums) per group, ranked: reporting cost, highest first, then key, None last."""
    providers = dict(ModelPricing.objects.values_list("model_name", "provider"))
    groups: dict = defaultdict(lambda: defaultdict(int))
    for row in rows:
        sums = groups[_key_of(group_by, row, providers)]
        sums["calls"] += 1
        sums["successful_calls"] += row.success
        sums["unpriced_calls"] += row.cost_source == "unpriced"
        sums["unconverted_calls"] += row.unconverted
        for name in TOKEN_NAMES:
            sums[name] += getattr(row, name)
        sums["reporting_cost"] += row.reporting_cost or Decimal(0)
    return sorted(
        ((key, dict(sums)) for key, sums in groups.items()),
        key=lambda item: (-item[1]["reporting_cost"], item[0] is None, "" if item[0] is None else item[0]),
    )


def _assert_group(entry: dict, key, sums: dict) -> None:
    assert entry["key"] == key
    assert entry["calls"] == sums["calls"]
    assert entry["successful_calls"] == sums["successful_calls"]
    assert entry["failed_calls"] == sums["calls"] - sums["successful_calls"]
    assert entry["unpriced_calls"] == sums["unpriced_calls"]
    assert entry["unconverted_calls"] == sums["unconverted_calls"]
    for name in TOKEN_NAMES:
        assert entry[name] == sums[name], name
    assert entry["cost"] == money_display(sums["reporting_cost"])
    assert entry["currency"] == "USD"
    _assert_key_named(entry)


def _assert_key_named(entry: dict) -> None:
    """A group (or series) of group_by=api_key names its key; the others carry no name."""
    if "name" not in entry:
        assert "prefix" not in entry
        return
    if entry["key"] is None:
        assert (entry["name"], entry["prefix"]) == (None, None)
    else:
        assert (entry["name"], entry["prefix"]) == tuple(
            ApiKey.objects.values_list("name", "prefix").get(pk=entry["key"])
        )


def _stats(reader, **params) -> dict:
    response = reader.get(STATS, params)
    assert response.status_code == 200, response.content[:500]
    return exact_json(response)["data"]


# --- Stats ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", GROUP_BYS)
@pytest.mark.parametrize("time_range", ["all", "7d"])
def test_every_group_equals_the_raw_group_by(reader, group_by, time_range):
    now = timezone.now()
    _seed(now)
    data = _stats(reader, time_range=time_range, group_by=group_by, limit=1000)
    start = None if data["start"] is None else datetime.fromisoformat(data["start"])
    expected = _oracle(group_by, _rows(start=start, end=datetime.fromisoformat(data["end"])))
    assert data["group_by"] == group_by
    assert data["total"] == len(expected) == len(data["groups"])
    assert expected, "the seed has calls in every range"
    assert all(("name" in entry) is (group_by == "api_key") for entry in data["groups"])
    for entry, (key, sums) in zip(data["groups"], expected, strict=True):
        _assert_group(entry, key, sums)
    assert data["summary"]["total_calls"] == sum(sums["calls"] for _key, sums in expected)
    assert data["summary"]["total_cost"] == money_display(sum(sums["reporting_cost"] for _key, sums in expected))


@pytest.mark.parametrize("group_by", ["model", "provider"])
def test_by_model_and_provider_the_groups_are_the_rollups_not_a_log_scan(reader, group_by):
    """Without a user or purpose filter these groups are read from the rollups, as the ungrouped
    stats are: a row put in the log behind the rollups' back (no service stores calls so) is in
    neither, while a breakdown whose groups scan the log (by user) has its group."""
    now = timezone.now()
    _seed(now)
    before = {g: _stats(reader, time_range="all", group_by=g, limit=1000) for g in (group_by, "user_id")}
    UsageLog.objects.create(model_name="gpt-4o", timestamp=now - timedelta(days=3), prompt_tokens=1, user_id=99)
    grouped = _stats(reader, time_range="all", group_by=group_by, limit=1000)
    assert grouped["groups"] == before[group_by]["groups"]
    assert grouped["summary"]["total_calls"] == _stats(reader, time_range="all")["summary"]["total_calls"]
    by_user = _stats(reader, time_range="all", group_by="user_id", limit=1000)
    assert by_user["total"] == before["user_id"]["total"] + 1
    assert [g["calls"] for g in by_user["groups"] if g["key"] == 99] == [1]
    trend = exact_json(reader.get(TREND, {"days": 7, "group_by": group_by, "tz": "Asia/Kathmandu"}))["data"]
    plain = exact_json(reader.get(TREND, {"days": 7, "tz": "Asia/Kathmandu"}))["data"]
    assert sum(s["calls"] for s in trend["series"]) == plain["summary"]["total_calls"]


def test_the_oracle_sees_what_the_seed_holds(reader):
    """The seed gives every kind of group: no user, no purpose, unknown provider, unconverted calls."""
    _seed(timezone.now())
    keys = {group_by: [key for key, _sums in _oracle(group_by, _rows())] for group_by in GROUP_BYS}
    assert None in keys["user_id"]
    assert None in keys["purpose"]
    revoked = ApiKey.objects.get(name="=cron")
    assert revoked.revoked_at is not None
    assert set(keys["api_key"]) == {None, ApiKey.objects.get(name="web app").pk, revoked.pk}  # Revoked: still its own.
    assert "unknown" in keys["provider"]
    assert {"OpenAI", "DeepSeek", "Anthropic", "Acme"} <= set(keys["provider"])
    model_sums = dict(_oracle("model", _rows()))
    assert model_sums["cny-chat"]["unconverted_calls"] == model_sums["cny-chat"]["calls"] > 0
    assert model_sums["cny-chat"]["reporting_cost"] == 0  # CNY never added to USD.
    assert model_sums["llama-local"]["unpriced_calls"] > 0


@pytest.mark.parametrize("group_by", GROUP_BYS)
def test_pages_by_limit_and_offset_cover_the_ranking_once(reader, group_by):
    _seed(timezone.now())
    whole = _stats(reader, group_by=group_by, limit=1000)
    pages, offset = [], 0
    while offset < whole["total"] + 2:
        page = _stats(reader, group_by=group_by, limit=2, offset=offset)
        assert (page["total"], page["limit"], page["offset"]) == (whole["total"], 2, offset)
        assert len(page["groups"]) == max(0, min(2, whole["total"] - offset))
        pages += page["groups"]
        offset += 2
    assert pages == whole["groups"]
    assert [group["key"] for group in _stats(reader, group_by=group_by)["groups"]] == [
        group["key"] for group in whole["groups"]
    ][:100]


def test_ties_are_ranked_by_key_with_none_last(reader):
    now = timezone.now()
    same = {"model_name": "gpt-4o", "prompt_tokens": 1000, "completion_tokens": 10, "timestamp": now}
    usage_record_batch(
        records=[
            UsageRecordInput(**same, user_id=9, purpose="b"),
            UsageRecordInput(**same, user_id=None, purpose=""),
            UsageRecordInput(**same, user_id=10, purpose="B"),
            UsageRecordInput(**same, user_id=2, purpose="a"),
            UsageRecordInput(model_name="gpt-4o", prompt_tokens=5, user_id=1, purpose="z", timestamp=now),
        ]
    )
    users = _stats(reader, group_by="user_id")["groups"]
    assert [group["key"] for group in users] == [2, 9, 10, None, 1]  # 10 after 9: numbers, not text.
    purposes = _stats(reader, group_by="purpose")["groups"]
    assert [group["key"] for group in purposes] == ["B", "a", "b", None, "z"]  # By code point.
    assert len({group["cost"] for group in users[:4]}) == 1


@pytest.mark.parametrize(
    "filters",
    [
        {"model": "gpt-4o"},
        {"provider": "openai"},
        {"user_id": 3},
        {"purpose": "extract"},
        {"provider": "OpenAI", "user_id": 2, "purpose": "summarise"},
        {"model": "gpt-4o", "provider": "DeepSeek"},
        {"tz": "Asia/Kathmandu", "time_range": "today"},
    ],
)
@pytest.mark.parametrize("group_by", GROUP_BYS)
def test_the_filters_combine_with_every_grouping(reader, group_by, filters):
    _seed(timezone.now())
    params = {"time_range": "30d", **filters}
    data = _stats(reader, group_by=group_by, **params)
    start = datetime.fromisoformat(data["start"])
    oracle_filters = {name: value for name, value in filters.items() if name not in ("tz", "time_range")}
    if "provider" in oracle_filters:
        oracle_filters["provider"] = {"openai": "OpenAI"}.get(oracle_filters["provider"], oracle_filters["provider"])
    expected = _oracle(group_by, _rows(start=start, end=datetime.fromisoformat(data["end"]), **oracle_filters))
    assert data["total"] == len(expected)
    for entry, (key, sums) in zip(data["groups"], expected, strict=True):
        _assert_group(entry, key, sums)
    ungrouped = _stats(reader, **params)["summary"]
    assert data["summary"]["total_calls"] == ungrouped["total_calls"]
    assert data["summary"]["total_cost"] == ungrouped["total_cost"]  # Log and rollups agree.


def test_the_default_answer_keeps_its_shape_and_model_adds_the_groups(reader):
    _seed(timezone.now())
    default = _stats(reader)
    assert set(default) == {"time_range", "time_label", "start", "end", "summary", "platforms", "providers"}
    by_model = _stats(reader, group_by="model", limit=3)
    assert {name: by_model[name] for name in default if name != "end"} == {
        name: value
        for name, value in default.items()
        if name != "end"  # end: now, a moment later.
    }
    assert [group["key"] for group in by_model["groups"]] == [p["model_name"] for p in default["platforms"]][:3]
    assert [group["cost"] for group in by_model["groups"]] == [p["reporting_cost"] for p in default["platforms"]][:3]
    by_user = _stats(reader, group_by="user_id")
    assert "platforms" not in by_user
    assert by_user["summary"] == default["summary"]


def test_an_empty_window_has_no_groups(reader):
    data = _stats(reader, group_by="purpose")
    assert (data["total"], data["groups"], data["summary"]["total_calls"]) == (0, [], 0)
    assert _stats(reader, group_by="model", model="no-such-model", provider="OpenAI")["groups"] == []


def test_the_key_is_recorded_by_every_path_that_has_one(staff_client):
    """A Python caller may pass the key; a staff login sends none; revoking a key leaves its calls its own."""
    api_key, _raw_key = api_key_create(name="batch job", scope=ApiKeyScope.WRITE_USAGE)
    by_python = usage_record(model_name="gpt-4o", prompt_tokens=10, api_key=api_key)
    batch = usage_record_batch(records=[UsageRecordInput(model_name="gpt-4o", prompt_tokens=5)], api_key=api_key)
    plain = usage_record(model_name="gpt-4o", prompt_tokens=1)
    response = staff_client.post(
        "/api/v1/usage/", {"model_name": "gpt-4o"}, content_type="application/json", secure=True
    )
    assert response.status_code == 201, response.content[:300]
    by_staff = response.json()["data"]["records"][0]["id"]
    api_key_revoke(api_key=api_key)
    stored = dict(UsageLog.objects.values_list("pk", "api_key_id"))
    assert stored == {by_python.pk: api_key.pk, batch[0].pk: api_key.pk, plain.pk: None, by_staff: None}


def test_the_migration_adds_the_column_to_a_log_with_rows_and_removes_it_again():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from schemaguard.guard import schema_report

    api_key, _raw_key = api_key_create(name="before", scope=ApiKeyScope.WRITE_USAGE)
    sent = usage_record(model_name="gpt-4o", prompt_tokens=10, api_key=api_key)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    MigrationExecutor(connection).migrate([("usage", "0020_usage_log_user_purpose_indexes")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT prompt_tokens FROM ai_model_usage_log WHERE id = %s", [sent.pk])
        assert cursor.fetchall() == [(10,)]
        columns = [
            column.name for column in connection.introspection.get_table_description(cursor, "ai_model_usage_log")
        ]
    assert "api_key_id" not in columns
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert UsageLog.objects.get(pk=sent.pk).api_key_id is None  # Stored before the column: no key.
    assert usage_record(model_name="gpt-4o", prompt_tokens=1, api_key=api_key).api_key_id == api_key.pk
    assert [f.id for f in schema_report().findings if f.is_serious()] == []


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        (STATS, {"group_by": "api_key_id"}, "group_by"),
        (STATS, {"group_by": "decision_id"}, "group_by"),
        (STATS, {"group_by": "user_id", "limit": 1001}, "limit"),
        (STATS, {"group_by": "user_id", "limit": 0}, "limit"),
        (STATS, {"group_by": "user_id", "offset": -1}, "offset"),
        (STATS, {"group_by": "user_id", "offset": "x"}, "offset"),
        (TREND, {"group_by": "nope"}, "group_by"),
        (TREND, {"group_by": "model", "limit": 1001}, "limit"),
        (EXPORT, {"group_by": "Model"}, "group_by"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(reader, url, params, field):
    response = reader.get(url, params)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["error"]["field"] == field
    assert body["error"]["message"]


def test_the_largest_limit_is_accepted(reader):
    assert reader.get(STATS, {"group_by": "user_id", "limit": 1000, "offset": 10**6}).status_code == 200


# --- Trend ------------------------------------------------------------------------------------------


def _local_day_sums(group_by: str, rows: list[UsageLog], zone, days: list[date]) -> dict:
    """reporting cost and calls per (local day, key)."""
    providers = dict(ModelPricing.objects.values_list("model_name", "provider"))
    sums: dict = defaultdict(lambda: [Decimal(0), 0])
    for row in rows:
        day = row.timestamp.astimezone(zone).date()
        if day in days:
            cell = sums[(day, _key_of(group_by, row, providers))]
            cell[0] += row.reporting_cost or Decimal(0)
            cell[1] += 1
    return sums


@pytest.mark.parametrize("group_by", GROUP_BYS)
@pytest.mark.parametrize(("tz", "limit"), [("UTC", 2), ("Asia/Kathmandu", 3), ("America/St_Johns", 10)])
def test_the_stacked_trend_is_top_n_and_other_adding_up_to_each_day(reader, group_by, tz, limit):
    _seed(timezone.now())
    params = {"days": 14, "tz": tz}
    response = reader.get(TREND, {**params, "group_by": group_by, "limit": limit})
    assert response.status_code == 200, response.content[:500]
    data = exact_json(response)["data"]
    plain = exact_json(reader.get(TREND, params))["data"]
    assert data["daily_trend"] == plain["daily_trend"]  # The same days as without group_by, exactly.
    assert data["summary"] == plain["summary"]
    zone = ZoneInfo(tz)
    days = [date.fromisoformat(day["date"]) for day in data["daily_trend"]]
    start = datetime.combine(days[0], time.min, tzinfo=zone)
    end = datetime.combine(days[-1] + timedelta(days=1), time.min, tzinfo=zone)
    ranking = _oracle(group_by, _rows(start=start, end=end))
    top = [key for key, _sums in ranking[:limit]]
    series = data["series"]
    assert [s["key"] for s in series[:-1]] == top
    assert [s["other"] for s in series] == [False] * len(top) + [True]
    assert series[-1]["key"] is None
    assert series[-1]["groups"] == len(ranking) - len(top) == data["total"] - len(top)
    for s, (_key, sums) in zip(series[:-1], ranking, strict=False):
        assert (s["calls"], s["cost"]) == (sums["calls"], money_display(sums["reporting_cost"]))
    for s in series:
        assert ("name" in s) is (group_by == "api_key")
        _assert_key_named(s)
    rest = ranking[limit:]
    assert series[-1]["calls"] == sum(sums["calls"] for _key, sums in rest)
    assert series[-1]["cost"] == money_display(sum((sums["reporting_cost"] for _key, sums in rest), Decimal(0)))
    cells = _local_day_sums(group_by, _rows(start=start, end=end), zone, days)
    for n, day in enumerate(data["daily_trend"]):
        values = [s["daily"][n] for s in series]
        assert all(value["date"] == day["date"] for value in values)
        assert sum(value["cost"] for value in values) == day["cost"]  # Exactly: the stack is the day.
        assert sum(value["calls"] for value in values) == day["calls"]
        assert all(value["cost"] >= 0 for value in values)
        for key, value in zip(top, values, strict=False):
            cost, calls = cells.get((days[n], key), (Decimal(0), 0))
            assert value["calls"] == calls
            assert abs(value["cost"] - money_display(cost)) <= Decimal("0.00000001")


def test_the_stack_adds_up_where_each_rounded_alone_would_not(reader):
    """Three groups of 0.000000015: rounded alone each shows 0.00000002 (0.00000006 together) while
    the day shows 0.00000004 (half to even); the running sums 0.000000015, 0.00000003, 0.000000045
    round to 0.00000002, 0.00000003, 0.00000004, so the stack shows 0.00000002, 0.00000001, 0.00000001."""
    now = timezone.now()
    model_priced("tiny", "USD", "0.015", "0", now)  # 0.015 per million: 0.000000015 per call of one token.
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="tiny", prompt_tokens=1, user_id=user, timestamp=now) for user in (1, 2, 3)
        ]
    )
    data = exact_json(reader.get(TREND, {"days": 1, "group_by": "user_id", "limit": 2, "tz": "UTC"}))["data"]
    assert data["daily_trend"][0]["cost"] == Decimal("0.00000004")
    assert [s["daily"][0]["cost"] for s in data["series"]] == [
        Decimal("0.00000002"),
        Decimal("0.00000001"),
        Decimal("0.00000001"),
    ]


# --- Export -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", GROUP_BYS)
def test_the_export_writes_one_row_per_group(reader, group_by):
    _seed(timezone.now())
    response = reader.get(EXPORT, {"time_range": "all", "group_by": group_by})
    assert response.status_code == 200
    assert f"aicost-usage-by-{group_by}-all-beginning-" in response["Content-Disposition"]
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, rows = table[0], table[1:]
    assert header[0] == group_by
    assert (header[1:3] == ["api_key_name", "api_key_prefix"]) is (group_by == "api_key")
    assert header[-2:] == ["reporting_cost", "reporting_currency"]
    expected = _oracle(group_by, _rows())
    assert len(rows) == len(expected)
    for row, (key, sums) in zip(rows, expected, strict=True):
        cells = dict(zip(header, row, strict=True))
        shown = "" if key is None else str(key)
        assert cells[group_by] == ("'" + shown if shown.startswith("=") else shown)
        if group_by == "api_key":
            name, prefix = ("", "") if key is None else ApiKey.objects.values_list("name", "prefix").get(pk=key)
            assert (cells["api_key_name"], cells["api_key_prefix"]) == (
                "'" + name if name.startswith("=") else name,  # Spreadsheet-safe, as every text cell.
                prefix,
            )
        assert Decimal(cells["reporting_cost"]) == sums["reporting_cost"]  # Exact, not rounded for display.
        assert cells["reporting_currency"] == "USD"
        assert int(cells["calls"]) == sums["calls"]
        assert int(cells["failed_calls"]) == sums["calls"] - sums["successful_calls"]
        assert int(cells["unconverted_calls"]) == sums["unconverted_calls"]
        for name in TOKEN_NAMES:
            assert int(cells[name]) == sums[name]


def test_the_export_with_filters_and_without_group_by_is_per_call(reader):
    _seed(timezone.now())
    grouped = reader.get(EXPORT, {"time_range": "7d", "group_by": "model", "user_id": 3, "purpose": "extract"})
    table = list(csv.reader(io.StringIO(b"".join(grouped.streaming_content).decode())))
    plain = reader.get(EXPORT, {"time_range": "7d", "user_id": 3, "purpose": "extract"})
    calls = list(csv.reader(io.StringIO(b"".join(plain.streaming_content).decode())))[1:]
    assert sum(int(row[1]) for row in table[1:]) == len(calls) > 0


# --- SQLite -----------------------------------------------------------------------------------------

SQLITE_SCRIPT = """
import django, json, random
django.setup()
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from django.utils import timezone
from ingest.services import usage_record, usage_record_batch
from pricing.models import ModelPricing
from usage.breakdowns import ranked, usage_daily_trend_groups, usage_export_group_rows, usage_sums_by_group
from usage.keys import api_key_create, api_key_revoke
from usage.models import UsageLog
from usage.records import TOKEN_FIELDS
from usage.services import UsageRecordInput
from usage.window_sums import UsageFilters

now = timezone.now()
rng = random.Random(5)
senders = [api_key_create(name=name, scope="write_usage")[0] for name in ("one", "two")]
for api_key in (*senders, None):
    usage_record_batch(records=[
        UsageRecordInput(model_name=rng.choice(["gpt-4o", "deepseek-chat", "llama-local"]),
                         prompt_tokens=rng.randrange(10**6), completion_tokens=rng.randrange(10**5),
                         user_id=rng.choice([1, 2, None]),
                         purpose=rng.choice(["a", "", "b"]), timestamp=now - timedelta(hours=rng.randrange(100)))
        for _ in range(100 if api_key is None else 50)
    ], api_key=api_key)
api_key_revoke(api_key=senders[1])
providers = dict(ModelPricing.objects.values_list("model_name", "provider"))
keys = {"model": lambda r: r.model_name, "provider": lambda r: providers.get(r.model_name, "unknown"),
        "user_id": lambda r: r.user_id, "purpose": lambda r: r.purpose or None, "api_key": lambda r: r.api_key_id}
start = now - timedelta(hours=50)
out = {}
for group_by, key_of in keys.items():
    oracle = defaultdict(lambda: [0, Decimal(0)])
    for row in UsageLog.objects.filter(timestamp__gte=start, timestamp__lt=now):
        oracle[key_of(row)][0] += 1
        oracle[key_of(row)][1] += row.reporting_cost or 0
    got = usage_sums_by_group(start=start, end=now, filters=UsageFilters(), group_by=group_by)
    trend = usage_daily_trend_groups(days=6, now=now, zone=timezone.get_current_timezone(), filters=UsageFilters(),
                                     group_by=group_by, limit=2)
    days = trend["daily_trend"]
    out[group_by] = {
        "keys": [key for key, _sums in ranked(got)],
        "oracle_keys": sorted(oracle, key=lambda k: (-oracle[k][1], k is None, "" if k is None else k)),
        "calls": {str(k): s.calls for k, s in got.items()},
        "oracle_calls": {str(k): v[0] for k, v in oracle.items()},
        "cost": {str(k): str(s.reporting_cost) for k, s in got.items()},
        "oracle_cost": {str(k): str(v[1]) for k, v in oracle.items()},
        "stacks": [[str(sum(s["daily"][n]["cost"] for s in trend["series"])), str(day["cost"]),
                    sum(s["daily"][n]["calls"] for s in trend["series"]), day["calls"]] for n, day in enumerate(days)],
        "trend_calls": sum(s["calls"] for s in trend["series"]),
        "trend_top": [s["key"] for s in trend["series"]],
    }
out["key_ids"] = [api_key.pk for api_key in senders]
out["export_labels"] = [list(row[:3]) for row in usage_export_group_rows(start=start, end=now, filters=UsageFilters(),
                                                                        group_by="api_key")]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_on_sqlite_the_groups_equal_the_rows(tmp_path):
    database = tmp_path / "aicost.sqlite3"
    migrated = sqlite_python(database, "manage.py", "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    result = sqlite_python(database, "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    key_ids, export_labels = answers.pop("key_ids"), answers.pop("export_labels")
    assert set(answers) == set(GROUP_BYS)
    assert set(answers["api_key"]["keys"]) == {*key_ids, None}  # The revoked key's calls too.
    labels = {key: (name, prefix is not None) for key, name, prefix in export_labels}
    assert labels == {key_ids[0]: ("one", True), key_ids[1]: ("two", True), None: (None, False)}
    for group_by, answer in answers.items():
        assert answer["calls"] == answer["oracle_calls"], group_by
        for stacked_cost, day_cost, stacked_calls, day_calls in answer["stacks"]:  # Exact on SQLite too.
            assert (Decimal(stacked_cost), stacked_calls) == (Decimal(day_cost), day_calls), group_by
        assert answer["trend_calls"] == 200
        assert len(answer["trend_top"]) == 3
        for key, cost in answer["cost"].items():  # SQLite sums as float: exact to 15 significant digits.
            assert Decimal(cost) == pytest.approx(Decimal(answer["oracle_cost"][key]), rel=Decimal("1e-14"))
        assert answer["keys"] == answer["oracle_keys"], group_by
    assert None in answers["user_id"]["keys"]
    assert "unknown" in answers["provider"]["keys"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("url", [STATS, TREND])
def test_a_paged_breakdown_reads_one_snapshot(monkeypatch, url):
    """By user the groups are ranked, the shown ones summed and the window's sums read in three
    statements: a batch committed before the last (the rollups' read of the summary or the days) is in
    none of them, so the groups add up to the summary."""
    import threading

    from django.db import connection

    from usage import breakdowns

    now = timezone.now()
    usage_record_batch(
        records=[UsageRecordInput(model_name="gpt-4o", prompt_tokens=1000, user_id=1, timestamp=now) for _ in range(3)]
    )

    def record_meanwhile():
        usage_record(model_name="gpt-4o", prompt_tokens=1000, user_id=2, timestamp=now)
        connection.close()

    def after_a_batch(read):
        def reading(**kwargs):
            thread = threading.Thread(target=record_meanwhile)
            thread.start()
            thread.join()
            return read(**kwargs)

        return reading

    for name in ("usage_totals_by_window", "usage_sums_by_local_day"):
        monkeypatch.setattr(breakdowns, name, after_a_batch(getattr(breakdowns, name)))
    client = api_client_with_key(ApiKeyScope.READ)
    if url == STATS:
        data = _stats(client, time_range="today", group_by="user_id")
    else:
        data = exact_json(client.get(url, {"group_by": "user_id", "days": 1, "tz": "UTC"}))["data"]
    assert UsageLog.objects.count() == 4  # The batch did commit.
    if url == STATS:
        assert [g["key"] for g in data["groups"]] == [1]
        assert data["summary"]["total_calls"] == 3
    else:
        assert [(s["key"], s["calls"]) for s in data["series"]] == [(1, 3), (None, 0)]
        assert data["daily_trend"][0]["calls"] == 3
