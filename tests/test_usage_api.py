import json
from decimal import Decimal

import pytest
from django.test import override_settings

from tests.api_helpers import HttpsApiClient, exact_json
from usage.keys import api_key_create, api_key_revoke
from usage.models import ApiKeyScope, CostSource, UsageCounter, UsageIdempotencyKey, UsageLog, UsageRollupHour
from usage.rollups import rollups_compact

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage/"


def _record(**overrides) -> dict:
    record = {"model_name": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 500, "purpose": "test"}
    record.update(overrides)
    return record


def test_one_record_is_stored_and_priced(writer):
    response = writer.post(URL, _record(decision_id="d-1", user_id=7, response_time=1.5), format="json")
    assert response.status_code == 201, response.content
    data = exact_json(response)["data"]
    assert (data["stored"], data["duplicates"], data["unpriced"]) == (1, 0, 0)
    # Exact, as stored: 1000 * 0.15 + 500 * 0.60 per million, a JSON number without trailing zeros.
    assert data["records"][0]["cost"] == Decimal("0.000450000000000000000000")
    assert b'"cost":0.00045,' in response.content
    log = UsageLog.objects.get()
    assert (log.decision_id, log.user_id, log.response_time, log.purpose) == ("d-1", 7, 1.5, "test")
    assert log.timestamp is not None


def test_batch_as_array_and_as_records_object(writer):
    assert writer.post(URL, [_record(), _record()], format="json").json()["data"]["stored"] == 2
    assert writer.post(URL, {"records": [_record()] * 3}, format="json").json()["data"]["stored"] == 3
    assert UsageLog.objects.count() == 5
    assert UsageCounter.objects.get(model_name="gpt-4o-mini").total_calls == 5
    rollups_compact()
    assert UsageRollupHour.objects.get(model_name="gpt-4o-mini").calls == 5


def test_openai_usage_object_is_accepted_as_is(writer):
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 100,
        "total_tokens": 2100,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 40, "accepted_prediction_tokens": 0},
    }
    response = writer.post(URL, {"model_name": "gpt-4o", "usage": usage}, format="json")
    assert response.status_code == 201, response.content
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens, log.reasoning_tokens) == (2000, 100, 1024, 40)
    # 976 * 2.50 + 1024 * 1.25 + 100 * 10.00 per million
    assert log.cost == Decimal("0.00472000")


def test_provider_cost_is_kept_and_flagged(writer):
    writer.post(URL, _record(cost="0.5"), format="json")
    log = UsageLog.objects.get()
    assert (log.cost, log.cost_source) == (Decimal("0.5"), CostSource.PROVIDER)


def test_unknown_model_is_recorded_unpriced(writer):
    data = writer.post(URL, _record(model_name="my-finetune"), format="json").json()["data"]
    assert (data["stored"], data["unpriced"], data["records"][0]["cost"]) == (1, 1, None)
    assert UsageLog.objects.get().cost_source == CostSource.UNPRICED


def test_a_retried_batch_is_stored_once(writer):
    batch = [_record(decision_id="order-9", idempotency_key=f"k{i}") for i in range(3)]
    first = writer.post(URL, batch, format="json").json()["data"]
    retry = writer.post(URL, batch, format="json").json()["data"]
    assert (first["stored"], first["duplicates"]) == (3, 0)
    assert (retry["stored"], retry["duplicates"]) == (0, 3)
    assert UsageLog.objects.count() == 3
    assert UsageCounter.objects.get(model_name="gpt-4o-mini").total_calls == 3


def test_same_key_twice_in_one_batch_and_other_decisions_are_independent(writer):
    batch = [
        _record(decision_id="a", idempotency_key="1"),
        _record(decision_id="a", idempotency_key="1"),
        _record(decision_id="b", idempotency_key="1"),
        _record(),  # No key: always stored.
    ]
    data = writer.post(URL, batch, format="json").json()["data"]
    assert (data["stored"], data["duplicates"]) == (3, 1)
    assert UsageIdempotencyKey.objects.count() == 2


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (_record(prompt_tokens=-1), "records[0].prompt_tokens"),
        (_record(completion_tokens="many"), "records[0].completion_tokens"),
        (_record(promt_tokens=5), "records[0].promt_tokens"),
        (_record(timestamp="2026-11-24T10:00:00"), "records[0].timestamp"),
        (_record(timestamp="yesterday"), "records[0].timestamp"),
        (_record(timestamp="9999-12-31T23:59:59Z"), "records[0].timestamp"),
        (_record(timestamp="1970-01-01T00:00:00Z"), "records[0].timestamp"),
        (_record(cached_tokens=2000), "records[0].cached_tokens"),
        (_record(user_id=0), "records[0].user_id"),
        (_record(model_name=""), "records[0].model_name"),
        (_record(model_name="x" * 101), "records[0].model_name"),
        (_record(success="perhaps"), "records[0].success"),
        (_record(cost="-1"), "records[0].cost"),
        ({"model_name": "gpt-4o", "prompt_tokens": 5, "usage": {"prompt_tokens": 5}}, "records[0].usage"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(writer, record, field):
    response = writer.post(URL, record, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert response.json()["success"] is False
    assert error["field"] == field
    assert error["message"].startswith(field)
    assert UsageLog.objects.count() == 0


def test_nothing_of_a_rejected_batch_is_stored(writer):
    batch = [_record(), _record(), _record(prompt_tokens=-5)]
    response = writer.post(URL, batch, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "records[2].prompt_tokens"
    assert UsageLog.objects.count() == 0
    assert UsageCounter.objects.get(model_name="gpt-4o-mini").total_calls == 0


@override_settings(AICOST_MAX_BATCH_SIZE=5)
def test_a_batch_over_the_limit_is_refused(writer):
    response = writer.post(URL, [_record()] * 6, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "records"
    assert "At most 5" in response.json()["error"]["message"]
    assert UsageLog.objects.count() == 0


def test_bad_json_is_a_400(writer):
    response = writer.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_empty_batch_is_a_400(writer):
    assert writer.post(URL, [], format="json").status_code == 400


def test_anonymous_revoked_and_read_only_keys_are_refused(reader):
    anonymous = HttpsApiClient()
    assert anonymous.post(URL, _record(), format="json").status_code == 401
    assert reader.post(URL, _record(), format="json").status_code == 403
    api_key, raw_key = api_key_create(name="old", scope=ApiKeyScope.WRITE_USAGE)
    api_key_revoke(api_key=api_key)
    revoked = HttpsApiClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert revoked.post(URL, _record(), format="json").status_code == 401
    assert UsageLog.objects.count() == 0


def test_staff_session_may_record_with_csrf(staff_user):
    client = HttpsApiClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.post(URL, _record(), format="json").status_code == 403  # No CSRF token.
    client.get("/admin/")  # Sets the CSRF cookie, as the admin page does.
    token = client.cookies["csrftoken"].value
    response = client.post(
        URL,
        json.dumps(_record()),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_REFERER="https://testserver/admin/",
    )
    assert response.status_code == 201, response.content
