"""Schemathesis against the OpenAPI schema drf-spectacular generates: every operation, with generated
valid and invalid input, authenticated with a read_write key, on the test PostgreSQL database.

Every response must be a non-5xx that conforms to the schema (status code, content type, body,
headers), valid input must be accepted and invalid input refused, and a request without the key
must be refused. The database holds usage and alerts first, so response bodies have content."""

from decimal import Decimal

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from aicost.wsgi import application
from alerts.models import BudgetAlert
from alerts.services import global_budget_set
from ingest.services import usage_record
from tests.alert_helpers import set_budget
from usage.keys import api_key_create
from usage.models import ApiKeyScope

pytestmark = pytest.mark.django_db

BASE_URL = "https://localhost"  # HTTPS: production settings redirect plain HTTP.
GENERATED = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(GENERATED)
schema.app = application  # Requests go to the WSGI application in-process, not over the network.
# Rules across fields that JSON Schema cannot state (usage or the token fields, never both; cached
# at most prompt tokens; reasoning at most completion tokens): a record the schema admits may still
# be refused, so "valid input is accepted" is not checked there. The schema's descriptions say so,
# and tests/test_usage_api.py covers each rule.
# The OTLP export (POST /v1/traces) is described at its top level only (its messages are
# opentelemetry-proto's): a body the schema admits may still be refused; tests/test_otlp_api.py covers it.
# GET /api/v1/budget/check needs at least one of model, user_id, purpose (a rule across parameters);
# tests/test_alerts_api.py covers it.
CROSS_FIELD_RULES = {"POST /api/v1/usage/", "POST /v1/traces", "GET /api/v1/budget/check"}


@pytest.fixture
def connection_kept_open():
    """What Django's test client also leaves out of a request: closing the database connection at its
    end, which would end the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def usage_and_alerts():
    set_budget("gpt-4o", "0.01")
    global_budget_set(monthly_budget=Decimal("0.02"))
    usage_record(model_name="gpt-4o", prompt_tokens=4000, completion_tokens=1000, response_time=1.2)
    usage_record(model_name="gpt-4o-mini", prompt_tokens=10, success=False, error_message="timeout")
    usage_record(model_name="my-finetune", prompt_tokens=10, purpose="unpriced")
    assert BudgetAlert.objects.exists()


@pytest.fixture
def api_key_header() -> dict:
    _api_key, raw_key = api_key_create(name="fuzz", scope=ApiKeyScope.READ_WRITE)
    return {"Authorization": f"Api-Key {raw_key}"}


def test_the_fuzzed_schema_is_the_one_the_app_serves(staff_client):
    served = staff_client.get("/api/schema/", {"format": "json"})
    assert served.status_code == 200
    assert served.json() == GENERATED
    assert len(GENERATED["paths"]) >= 6


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api(case, connection_kept_open, usage_and_alerts, api_key_header):
    excluded = [positive_data_acceptance] if case.operation.label in CROSS_FIELD_RULES else []
    case.call_and_validate(base_url=BASE_URL, headers=api_key_header, excluded_checks=excluded)


# --- What the fuzzer found, pinned down as plain tests -----------------------------------------


def test_every_operation_documents_its_error_responses():
    for path, operations in GENERATED["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403", "503"} <= operation["responses"].keys(), (method, path)
    assert "404" in GENERATED["paths"]["/api/v1/budget/check"]["get"]["responses"]
    stored = GENERATED["components"]["schemas"]["UsageStoredRecord"]["properties"]
    assert stored["cost"]["nullable"] is True  # An unpriced call has no cost.


def test_lookups_match_names_exactly_and_empty_means_not_given(reader):
    trend = "/api/v1/ai-platforms/cost-trend-daily"
    assert reader.get(trend, {"purpose": "\xa0", "model": " "}).json()["data"]["summary"]["total_calls"] == 0
    unknown = reader.get("/api/v1/budget/check", {"model": " "})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_model")
    assert reader.get("/api/v1/alerts/", {"status": "", "level": "", "model": ""}).status_code == 200
    assert reader.get(trend, {"tz": " UTC"}).status_code == 400  # Only the names the schema lists.
    assert reader.get(trend, {"tz": "Asia/Kathmandu"}).status_code == 200
