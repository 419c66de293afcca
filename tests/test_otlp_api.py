"""POST /v1/traces through Django: encodings, exactly-once, partial success, authentication, and the
statuses and google.rpc.Status bodies the OTLP/HTTP specification prescribes."""

import gzip
import json
from decimal import Decimal

import pytest
from django.db import connection
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import REGISTRY

from pricing.models import ModelPricing, PatternKind
from pricing.services import model_name_patterns_set
from tests.conftest import HttpsClient
from tests.gunicorn_server import free_port
from tests.otlp_helpers import START, chat, export, span
from tests.sqlite_process import sqlite_python
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageCounter, UsageLog

pytestmark = pytest.mark.django_db
URL = "/v1/traces"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")


@pytest.fixture
def key():
    return api_key_create(name="otel", scope=ApiKeyScope.WRITE_USAGE)[1]


def _post(body: bytes, *, key: str | None, content_type: str = PROTOBUF, **headers):
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    return HttpsClient().post(URL, data=body, content_type=content_type, **headers)


def _answer(response) -> ExportTraceServiceResponse:
    assert response["Content-Type"] == PROTOBUF
    return ExportTraceServiceResponse.FromString(response.content)


def _status(response) -> status_pb2.Status:
    assert response["Content-Type"] == PROTOBUF
    return status_pb2.Status.FromString(response.content)


def _spans_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("aicost_otlp_spans_total", {"outcome": outcome}) or 0.0


def test_a_protobuf_export_is_stored_priced_and_a_resend_stores_nothing(key):
    body = export(span(chat(), trace_id=TRACE, span_id=SPAN)).SerializeToString()
    response = _post(body, key=key)
    assert response.status_code == 200
    assert not _answer(response).HasField("partial_success")  # Full success: the field is left unset.
    log = UsageLog.objects.get()
    assert (log.model_name, log.sent_model_name, log.prompt_tokens, log.completion_tokens) == (
        "gpt-4o-mini",
        "gpt-4o-mini",
        1000,
        500,
    )
    assert log.cost == Decimal("0.00045")  # 1000 x 0.15 + 500 x 0.60 per million.
    assert (log.decision_id, log.purpose, log.timestamp, log.response_time) == (TRACE.hex(), "chat", START, 1.5)
    stored_before = _spans_counted("stored")
    resent = _post(body, key=key)
    assert resent.status_code == 200
    assert not _answer(resent).HasField("partial_success")
    assert UsageLog.objects.count() == 1
    assert UsageCounter.objects.get(model_name="gpt-4o-mini").total_calls == 1
    assert _spans_counted("stored") == stored_before


def test_an_exported_call_carries_the_key_that_sent_it():
    api_key, raw_key = api_key_create(name="collector", scope=ApiKeyScope.WRITE_USAGE)
    assert _post(export(span(chat(), trace_id=TRACE, span_id=SPAN)).SerializeToString(), key=raw_key).status_code == 200
    assert UsageLog.objects.get().api_key_id == api_key.pk


def test_otlp_json_is_answered_in_json(key):
    attributes = [
        {"key": key_, "value": {"intValue": value} if isinstance(value, int) else {"stringValue": value}}
        for key_, value in chat("gpt-4o", 4000, 1000).items()
    ]
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE.hex().upper(),
                                "spanId": SPAN.hex(),
                                "name": "chat gpt-4o",
                                "kind": 3,
                                "startTimeUnixNano": "1764583200000000000",
                                "endTimeUnixNano": "1764583202000000000",
                                "attributes": attributes,
                                "status": {"code": 2, "message": "upstream timeout"},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    response = _post(json.dumps(document).encode(), key=key, content_type=JSON)
    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    assert response.json() == {}
    log = UsageLog.objects.get()
    assert (log.model_name, log.decision_id, log.success, log.error_message) == (
        "gpt-4o",
        TRACE.hex(),
        False,
        "upstream timeout",
    )
    assert (log.response_time, log.cost) == (2.0, Decimal("0.02"))  # 4000 x 2.50 + 1000 x 10.00 per million.


def test_a_gzip_export(key):
    body = gzip.compress(export(span(chat())).SerializeToString())
    response = _post(body, key=key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert UsageLog.objects.count() == 1
    response = _post(b"{}", key=key, content_type=f"{JSON}; charset=utf-8")  # Parameters are allowed.
    assert (response.status_code, response.json()) == (200, {})


def test_rejected_spans_are_a_partial_success_and_the_others_are_stored(key):
    bad = span(chat(input_tokens=10, **{"gen_ai.usage.cache_read.input_tokens": 20}), span_id=SPAN)
    noise = [span({"http.request.method": "POST"}, name="POST") for _ in range(3)]
    ignored_before = _spans_counted("ignored")
    response = _post(export(bad, span(chat()), *noise).SerializeToString(), key=key)
    assert response.status_code == 200
    partial = _answer(response).partial_success
    assert partial.rejected_spans == 1
    assert partial.error_message == (
        f"span {SPAN.hex()}: gen_ai.usage.cache_read.input_tokens (cached_tokens): Cannot exceed prompt_tokens."
    )
    assert UsageLog.objects.count() == 1
    assert _spans_counted("ignored") == ignored_before + 3


def test_a_warning_is_a_partial_success_with_nothing_rejected(key):
    response = _post(export(span(chat(**{"user.id": "alice"}))).SerializeToString(), key=key)
    partial = _answer(response).partial_success
    assert partial.rejected_spans == 0
    assert "user.id" in partial.error_message
    assert UsageLog.objects.get().user_id is None


def test_an_export_without_genai_spans_and_an_empty_one_succeed_and_store_nothing(key):
    response = _post(export(span({"db.system": "postgresql"})).SerializeToString(), key=key)
    assert response.status_code == 200
    assert not _answer(response).HasField("partial_success")
    response = _post(b"{}", key=key, content_type=JSON)  # The specification: an empty request is a success.
    assert (response.status_code, response.json()) == (200, {})
    assert not UsageLog.objects.exists()


@pytest.mark.parametrize(
    "header",
    [
        lambda key: {"HTTP_AUTHORIZATION": f"Bearer {key}"},
        lambda key: {"HTTP_AUTHORIZATION": f"Api-Key {key}"},
        lambda key: {"HTTP_X_API_KEY": key},
    ],
)
def test_the_key_as_an_exporter_sends_it(key, header):
    response = HttpsClient().post(
        URL, data=export(span(chat())).SerializeToString(), content_type=PROTOBUF, **header(key)
    )
    assert response.status_code == 200


def test_no_key_a_wrong_key_and_a_read_key_are_refused_with_a_status():
    body = export(span(chat())).SerializeToString()
    missing = _post(body, key=None)
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == "Bearer, Api-Key"
    assert "Authorization: Bearer <key>" in _status(missing).message
    wrong = _post(body, key="aic_nope")
    assert (wrong.status_code, _status(wrong).message) == (401, "Invalid or revoked API key.")
    read_key = api_key_create(name="reader", scope=ApiKeyScope.READ)[1]
    refused = _post(body, key=read_key, content_type=JSON, HTTP_ACCEPT=PROTOBUF)
    assert refused.status_code == 403
    assert refused["Content-Type"] == JSON  # The request's encoding, whatever Accept says.
    assert "write_usage" in refused.json()["message"]
    assert not UsageLog.objects.exists()


def test_undecodable_bodies_are_400_with_a_bad_request_detail(key):
    response = _post(b"\xff\xff\xff\xff", key=key)
    assert response.status_code == 400
    status = _status(response)
    assert "not a protobuf ExportTraceServiceRequest" in status.message
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].description == status.message
    response = _post(b"{oops", key=key, content_type=JSON)
    assert response.status_code == 400
    assert response["Content-Type"] == JSON
    body = response.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    assert "not valid JSON" in body["message"]
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert _post(b"not gzip", key=key, HTTP_CONTENT_ENCODING="gzip").status_code == 400


def test_other_content_types_and_encodings_are_415(key):
    response = _post(b"{}", key=key, content_type="text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf" in response.json()["message"]
    response = _post(export(span(chat())).SerializeToString(), key=key, HTTP_CONTENT_ENCODING="br")
    assert response.status_code == 415
    assert "br" in _status(response).message


def test_a_body_above_the_limit_is_413(key, settings):
    settings.AICOST_OTLP_MAX_BODY_BYTES = 1000
    response = _post(export(*(span(chat()) for _ in range(20))).SerializeToString(), key=key)
    assert response.status_code == 413
    bomb = gzip.compress(b"\0" * 50_000)
    assert len(bomb) < 1000
    assert _post(bomb, key=key, HTTP_CONTENT_ENCODING="gzip").status_code == 413
    assert not UsageLog.objects.exists()


def test_a_batch_larger_than_the_usage_api_takes_is_stored_in_several(key, settings):
    settings.AICOST_MAX_BATCH_SIZE = 3
    response = _post(export(*(span(chat()) for _ in range(7))).SerializeToString(), key=key)
    assert response.status_code == 200
    assert UsageLog.objects.count() == 7


def test_a_broken_schema_is_503_with_retry_after(key):
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE ai_model_usage_log")  # Rolled back with the test (transactional DDL).
    response = _post(export(span(chat())).SerializeToString(), key=key)
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "ai_model_usage_log" in _status(response).message


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lost_database_is_503_with_retry_after(key):
    settings_dict = connection.settings_dict
    port = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = str(free_port())
    try:
        response = _post(export(span(chat())).SerializeToString(), key=key, content_type=PROTOBUF)
    finally:
        connection.close()
        settings_dict["PORT"] = port
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database is unavailable" in _status(response).message


def test_a_snapshot_the_price_book_does_not_know_is_recorded_under_the_priced_request_model(key):
    snapshot = {"gen_ai.response.model": "gpt-4o-mini-2024-07-18"}
    unknown = {"gen_ai.request.model": "my-finetune", "gen_ai.response.model": "my-finetune-v2"}
    response = _post(export(span(chat(**snapshot)), span({**chat(), **unknown})).SerializeToString(), key=key)
    assert response.status_code == 200
    logs = UsageLog.objects.order_by("id")
    assert [(log.sent_model_name, log.model_name, log.cost_source) for log in logs] == [
        ("gpt-4o-mini", "gpt-4o-mini", "computed"),
        ("my-finetune-v2", "my-finetune-v2", "unpriced"),  # Neither is priced: the model that answered.
    ]
    model_name_patterns_set(
        pricing=ModelPricing.objects.get(model_name="gpt-4o-mini"), patterns=[(PatternKind.PREFIX, "gpt-4o-mini-")]
    )
    _post(export(span(chat(**snapshot))).SerializeToString(), key=key)
    latest = UsageLog.objects.order_by("id").last()
    assert (latest.sent_model_name, latest.model_name) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")


def test_answers_speak_the_requested_language(key):
    response = _post(b"{}", key=key, content_type="text/plain", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 415
    chinese = "不支持的内容类型 text/plain：请发送 application/x-protobuf 或 application/json。"  # noqa: RUF001
    assert response.json()["message"] == chinese


SQLITE_SCRIPT = """
import django
django.setup()
from django.core.management import call_command
from django.test import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from decimal import Decimal
from tests.otlp_helpers import chat, export, span
from usage.keys import api_key_create
from usage.models import UsageLog

call_command("migrate", verbosity=0)
raw_key = api_key_create(name="otel", scope="write_usage")[1]
bad = chat(input_tokens=1, **{"gen_ai.usage.cache_read.input_tokens": 2})
body = export(span(chat()), span(bad)).SerializeToString()
for _ in range(2):
    response = Client().post("/v1/traces", data=body, content_type="application/x-protobuf",
                             HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200, response.content
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1
log = UsageLog.objects.get()
assert (log.model_name, log.cost_source, log.cost) == ("gpt-4o-mini", "computed", Decimal("0.00045")), log.__dict__
print("ok")
"""


def test_otlp_ingestion_on_sqlite(tmp_path):
    result = sqlite_python(tmp_path / "db.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
