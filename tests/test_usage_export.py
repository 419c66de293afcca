"""GET /api/v1/usage/export.csv and the admin's "Export selected rows as CSV"."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from ingest.services import usage_record_batch
from tests.api_helpers import HttpsApiClient
from usage.export import spreadsheet_safe
from usage.models import UsageLog
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db
EXPORT = "/api/v1/usage/export.csv"
STATS = "/api/v1/ai-platforms/stats"
HEADER = (
    "id,timestamp,model_name,decision_id,user_id,purpose,prompt_tokens,completion_tokens,cached_tokens,"
    "reasoning_tokens,cache_write_5m_tokens,cache_write_1h_tokens,input_audio_tokens,output_audio_tokens,"
    "output_image_tokens,cost,currency,reporting_cost,reporting_currency,exchange_rate,cost_source,price_version_id,"
    "response_time,success,error_message\r\n"
)
T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
COLUMN = {name: index for index, name in enumerate(HEADER.strip().split(","))}


def _text(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def _rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(_text(response))))[1:]


def _small_dataset() -> list[UsageLog]:
    return usage_record_batch(
        records=[
            UsageRecordInput(
                model_name="gpt-4o",
                prompt_tokens=1_000_000,
                decision_id="order-1",
                user_id=7,
                purpose="summarise",
                response_time=1.25,
                timestamp=T0,
            ),
            UsageRecordInput(
                model_name="deepseek-chat",
                prompt_tokens=100,
                cost=Decimal("0.00000001"),
                success=False,
                error_message='timeout, "upstream"\nretry',
                response_time=2.0,
                timestamp=T0 + timedelta(hours=1),
            ),
            UsageRecordInput(
                model_name="llama-local", prompt_tokens=10, completion_tokens=10, timestamp=T0 - timedelta(days=1)
            ),
            UsageRecordInput(model_name="gpt-4o-mini", prompt_tokens=1000, completion_tokens=500, timestamp=T0),
        ]
    )


def _version(log: UsageLog) -> str:
    return "" if log.price_version_id is None else str(log.price_version_id)


def test_header_and_rows_exactly(reader):
    gpt4o, deepseek, llama, mini = _small_dataset()
    response = reader.get(EXPORT, {"time_range": "all", "tz": "Asia/Kathmandu"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        _text(response)
        == (
            HEADER
            # Oldest first; rows at the same moment in id order. Timestamps in tz, with its offset.
            # Unpriced: no cost, no currency. In the reporting currency (USD): reporting_cost = cost, no rate.
            + f"{llama.id},2025-02-28T14:15:00+05:45,llama-local,,,,10,10,0,0,0,0,0,0,0,,,,,,unpriced,,,true,\r\n"
            + f"{gpt4o.id},2025-03-01T14:15:00+05:45,gpt-4o,order-1,7,summarise,1000000,0,0,0,0,0,0,0,0,"
            "2.500000000000000000000000,USD,2.500000000000000000000000,USD,,computed,"
            f"{_version(gpt4o)},1.25,true,\r\n"
            + f"{mini.id},2025-03-01T14:15:00+05:45,gpt-4o-mini,,,,1000,500,0,0,0,0,0,0,0,"
            "0.000450000000000000000000,USD,0.000450000000000000000000,USD,,computed,"
            f"{_version(mini)},,true,\r\n"
            + f"{deepseek.id},2025-03-01T15:15:00+05:45,deepseek-chat,,,,100,0,0,0,0,0,0,0,0,"
            "0.000000010000000000000000,USD,0.000000010000000000000000,USD,,provider,"
            f'{_version(deepseek)},2.0,false,"timeout, ""upstream""\nretry"\r\n'
        )
    )
    assert gpt4o.price_version_id is not None


def test_money_is_the_stored_decimal_and_timestamps_default_to_time_zone(reader, settings):
    _small_dataset()
    rows = {row[0]: row for row in _rows(reader.get(EXPORT))}
    for log in UsageLog.objects.all():
        cost = rows[str(log.id)][COLUMN["cost"]]
        assert cost == ("" if log.cost is None else format(log.cost, "f"))
        assert datetime.fromisoformat(rows[str(log.id)][1]) == log.timestamp
        assert rows[str(log.id)][1].endswith("+00:00")  # TIME_ZONE is UTC in the tests.
    assert settings.TIME_ZONE == "UTC"


def test_an_empty_window_is_the_header_alone(reader):
    assert _text(reader.get(EXPORT, {"time_range": "today"})) == HEADER


def test_filename_names_the_range_and_window(reader):
    response = reader.get(EXPORT, {"time_range": "7d"})
    disposition = response["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="aicost-usage-7d-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.csv"', disposition)
    start, end = re.findall(r"(\d{8}T\d{6}Z)", disposition)
    parse = lambda stamp: datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)  # noqa: E731
    assert parse(end) - parse(start) == timedelta(days=7)
    assert "aicost-usage-all-beginning-" in reader.get(EXPORT)["Content-Disposition"]


def _seed_ages() -> None:
    now = timezone.now()
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="gpt-4o", prompt_tokens=10, timestamp=now - timedelta(minutes=1)),
            UsageRecordInput(model_name="gpt-4o", prompt_tokens=10, success=False, timestamp=now - timedelta(hours=2)),
            UsageRecordInput(
                model_name="deepseek-chat",
                prompt_tokens=10,
                user_id=5,
                purpose="batch",
                timestamp=now - timedelta(days=2),
            ),
            UsageRecordInput(model_name="llama-local", prompt_tokens=10, timestamp=now - timedelta(days=20)),
            UsageRecordInput(model_name="gpt-4o-mini", prompt_tokens=10, user_id=5, timestamp=now - timedelta(days=40)),
            UsageRecordInput(model_name="gpt-4o-mini", prompt_tokens=10, timestamp=now - timedelta(days=200)),
        ]
    )


@pytest.mark.parametrize(
    ("params", "calls"),
    [
        ({}, 6),
        ({"time_range": "24h"}, 2),
        ({"time_range": "7d"}, 3),
        ({"time_range": "30d"}, 4),
        ({"time_range": "90d"}, 5),
        ({"model": "gpt-4o"}, 2),
        ({"provider": "OpenAI"}, 4),
        ({"provider": "openai", "time_range": "30d"}, 2),
        ({"provider": "OpenAI", "model": "deepseek-chat"}, 0),
        ({"user_id": 5}, 2),
        ({"purpose": "batch"}, 1),
        ({"user_id": 5, "time_range": "7d"}, 1),
    ],
)
def test_filters_select_the_rows_the_stats_count(reader, params, calls):
    _seed_ages()
    rows = _rows(reader.get(EXPORT, params))
    stats = reader.get(STATS, params).json()["data"]["summary"]
    assert len(rows) == stats["total_calls"] == calls
    assert sum(row[COLUMN["success"]] == "false" for row in rows) == stats["failed_calls"]
    if "model" in params:
        assert {row[2] for row in rows} <= {params["model"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"time_range": "bogus"}, "time_range"),
        ({"time_range": "1y"}, "time_range"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"user_id": "me"}, "user_id"),
        ({"user_id": 0}, "user_id"),
        ({"model": "x" * 101}, "model"),
    ],
)
def test_bad_parameters_are_the_stats_400_json(reader, params, field):
    response = reader.get(EXPORT, params, HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["success"] is False
    assert body["error"]["field"] == field
    assert body == reader.get(STATS, params).json()


def test_asking_for_csv_by_accept_header_works(reader):
    _small_dataset()
    response = reader.get(EXPORT, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert len(_rows(response)) == 4


def test_reading_needs_staff_or_a_read_key(writer, staff_client, reader):
    anonymous = HttpsApiClient().get(EXPORT)
    assert anonymous.status_code == 401
    assert anonymous.json()["success"] is False
    assert writer.get(EXPORT).status_code == 403
    assert staff_client.get(EXPORT).status_code == 200
    assert reader.get(EXPORT).status_code == 200


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=b", "a=b"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_spreadsheet_safe(text, cell):
    assert spreadsheet_safe(text) == cell


def test_free_text_formulas_are_defused_in_the_download(reader):
    usage_record_batch(
        records=[
            UsageRecordInput(
                model_name="=cmd|'/C calc'!A0",
                decision_id="+order",
                purpose="@team",
                error_message="-1+1",
                prompt_tokens=5,
                timestamp=T0,
            )
        ]
    )
    (row,) = _rows(reader.get(EXPORT))
    quoted = (row[2], row[3], row[5], row[COLUMN["error_message"]])
    assert quoted == ("'=cmd|'/C calc'!A0", "'+order", "'@team", "'-1+1")
    assert row[COLUMN["cost_source"]] == "unpriced"


def test_the_export_is_in_the_openapi_schema(staff_client):
    schema = staff_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][EXPORT]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/csv"}
    assert {p["name"] for p in operation["parameters"]} == {
        "time_range",
        "tz",
        "model",
        "provider",
        "user_id",
        "purpose",
        "group_by",
    }


def test_a_missing_table_is_a_503_json_not_a_cut_off_download(reader):
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE ai_model_usage_log")  # Rolled back with the test's transaction.
    response = reader.get(EXPORT)
    assert response.status_code == 503
    assert not response.streaming
    assert response.json()["error"]["code"] == "schema_unhealthy"


# --- Admin action --------------------------------------------------------------------------------


def _export_action(client, data: dict, query: str = ""):
    url = reverse("admin:usage_usagelog_changelist") + query
    return client.post(url, {"action": "export_csv", "index": 0, **data})


def test_admin_exports_the_selected_rows_in_the_same_format(staff_client, reader):
    gpt4o, deepseek, llama, mini = _small_dataset()
    response = _export_action(staff_client, {"_selected_action": [gpt4o.id, llama.id, deepseek.id]})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="aicost-usage-selected-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"]
    )
    text = _text(response)
    api_lines = _text(reader.get(EXPORT)).splitlines(keepends=True)
    # The API's lines for those rows, same order (the deepseek row spans two lines: a quoted newline).
    assert text == "".join(line for line in api_lines if not line.startswith(f"{mini.id},"))


def test_admin_export_of_all_rows_matching_the_changelist_filter(staff_client):
    _small_dataset()
    response = _export_action(staff_client, {"select_across": 1, "_selected_action": [0]}, "?model_name=gpt-4o-mini")
    rows = _rows(response)
    assert [row[2] for row in rows] == ["gpt-4o-mini"]


def test_admin_export_needs_a_staff_login(client, staff_user):
    response = _export_action(client, {"_selected_action": [1]})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
