"""GET /metrics: who may scrape, and that the numbers move with what the service does."""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client, override_settings

from ingest.services import usage_record
from pricing.models import ModelPricing
from tests.api_helpers import HttpsApiClient
from tests.gunicorn_server import free_port, gunicorn_serving, shared_test_database_url
from tests.metrics_helpers import samples, value
from usage.keys import api_key_create, api_key_revoke
from usage.models import ApiKeyScope

pytestmark = pytest.mark.django_db
METRICS = "/metrics"
TOKEN = "scrape-token-0123456789abcdef"
REQUESTS = "aicost_http_requests_total"


def scrape(api) -> dict:
    response = api.get(METRICS)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")  # Plain HTTP, as Prometheus scrapes a pod.


# --- Access ------------------------------------------------------------------------------------


def test_anonymous_and_write_keys_may_not_scrape(client, writer):
    anonymous = client.get(METRICS)
    assert anonymous.status_code == 401
    assert anonymous.json()["success"] is False
    assert anonymous["WWW-Authenticate"] == "Api-Key"  # No metrics token set: no bearer scheme offered.
    forbidden = writer.get(METRICS)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "permission_denied"


def test_staff_and_read_keys_may_scrape(staff_client, reader):
    assert scrape(staff_client)
    assert scrape(reader)


def test_a_revoked_read_key_may_not_scrape():
    key, raw_key = api_key_create(name="scraper", scope=ApiKeyScope.READ)
    api_key_revoke(api_key=key)
    response = HttpsApiClient().get(METRICS, HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    assert response.status_code == 401


@override_settings(AICOST_METRICS_TOKEN=TOKEN)
def test_the_metrics_token_may_scrape_over_plain_http_and_a_wrong_one_may_not():
    assert scrape(bearer(TOKEN))
    wrong = bearer(TOKEN[:-1] + "X").get(METRICS)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "authentication_failed"


@override_settings(AICOST_METRICS_TOKEN=TOKEN)
def test_a_refused_scrape_is_told_about_the_metrics_token():
    response = Client().get(METRICS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer, Api-Key"
    assert "`Authorization: Bearer <AICOST_METRICS_TOKEN>`" in response.json()["error"]["message"]


@override_settings(AICOST_METRICS_TOKEN="")
def test_without_a_configured_token_no_bearer_token_is_accepted():
    assert bearer("").get(METRICS).status_code == 401
    assert bearer("anything").get(METRICS).status_code == 401


@override_settings(AICOST_METRICS_TOKEN=TOKEN)
def test_the_metrics_token_opens_only_metrics_not_the_api():
    assert bearer(TOKEN).get("/api/v1/ai-platforms/stats", secure=True).status_code == 401


def test_openmetrics_when_the_scraper_asks_for_it(reader):
    response = reader.get(METRICS, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")
    assert reader.get(METRICS, HTTP_ACCEPT="text/plain").status_code == 200  # Never a 406.


# --- HTTP requests -----------------------------------------------------------------------------


def test_requests_are_counted_by_method_route_and_status(reader):
    labels = {"method": "GET", "route": "/api/v1/budget/check"}
    before = scrape(reader)
    assert reader.get("/api/v1/budget/check", {"model": "no-such-model"}).status_code == 404
    assert reader.get("/api/v1/budget/check", {"model": "gpt-4o"}).status_code == 200
    assert reader.get("/api/v1/budget/check", {"model": "gpt-4o"}).status_code == 200
    after = scrape(reader)
    assert value(after, REQUESTS, **labels, status="404") == value(before, REQUESTS, **labels, status="404") + 1
    assert value(after, REQUESTS, **labels, status="200") == value(before, REQUESTS, **labels, status="200") + 2
    latency = "aicost_http_request_duration_seconds_count"
    assert value(after, latency, **labels) == value(before, latency, **labels) + 3


def test_routes_are_url_patterns_never_raw_paths(staff_client, reader):
    pricing_id = ModelPricing.objects.get(model_name="gpt-4o").pk
    before = scrape(reader)
    assert staff_client.get(f"/admin/pricing/modelpricing/{pricing_id}/change/").status_code == 200
    assert reader.get("/no/such/page/7f3a9c").status_code == 404
    after = scrape(reader)
    change_page = {"method": "GET", "route": "/admin/pricing/modelpricing/<path:object_id>/change/", "status": "200"}
    assert value(after, REQUESTS, **change_page) == value(before, REQUESTS, **change_page) + 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, REQUESTS, **unmatched) == value(before, REQUESTS, **unmatched) + 1
    routes = {dict(labels).get("route") for _name, labels in after}
    assert not any("7f3a9c" in route or str(pricing_id) in route for route in routes if route)


def test_unknown_methods_share_one_label(reader):
    before = scrape(reader)
    reader.generic("BREW", "/api/v1/alerts/")
    after = scrape(reader)
    labels = {"method": "other", "route": "/api/v1/alerts/", "status": "405"}
    assert value(after, REQUESTS, **labels) == value(before, REQUESTS, **labels) + 1


# --- Usage by model, from the database ---------------------------------------------------------


def test_calls_cost_and_unpriced_calls_by_model_match_what_was_ingested(writer, reader):
    record = {"model_name": "gpt-4o-mini", "prompt_tokens": 1000, "completion_tokens": 500}
    batch = [record, record, record, {**record, "model_name": "my-finetune"}]
    response = writer.post("/api/v1/usage/", batch, format="json")
    assert response.status_code == 201, response.content
    scraped = scrape(reader)
    mini = {"model": "gpt-4o-mini", "provider": "OpenAI"}
    assert value(scraped, "aicost_model_calls_total", **mini) == 3
    cost = value(scraped, "aicost_model_cost_total", **mini, currency="USD")
    assert cost == pytest.approx(float(Decimal("0.00045") * 3))
    assert value(scraped, "aicost_model_calls_total", model="gpt-4o", provider="OpenAI") == 0
    assert value(scraped, "aicost_model_unpriced_calls_total", model="my-finetune") == 1
    assert ("aicost_model_unpriced_calls_total", frozenset({("model", "gpt-4o-mini")})) not in scraped

    writer.post("/api/v1/usage/", record, format="json")
    assert value(scrape(reader), "aicost_model_calls_total", **mini) == 4


# --- Schema health ----------------------------------------------------------------------------


def test_schema_health_gauges(reader):
    healthy = scrape(reader)
    assert value(healthy, "aicost_database_up") == 1
    assert value(healthy, "aicost_schema_healthy") == 1
    assert ("aicost_schema_missing_tables", frozenset()) in healthy
    assert value(healthy, "aicost_schema_missing_tables") == 0

    with connection.cursor() as cursor:  # Rolled back with the test's transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DROP TABLE ai_model_usage_log")
    cached = scrape(reader)
    assert value(cached, "aicost_schema_healthy") == 1  # Cached for a few seconds: scrapes stay cheap.

    from schemaguard.guard import schema_health_forget

    schema_health_forget()
    broken = scrape(reader)
    assert value(broken, "aicost_schema_healthy") == 0
    assert value(broken, "aicost_schema_missing_tables") == 1
    assert value(broken, "aicost_database_up") == 1
    assert ("aicost_model_calls_total", frozenset({("model", "gpt-4o"), ("provider", "OpenAI")})) in broken


# --- Under gunicorn: several workers, and a database that is down ------------------------------

# Production settings with the HTTPS redirect on: scrapes and probes over plain HTTP must be exempt.
PRODUCTION_HTTP = {"DEBUG": "false", "SECURE_SSL_REDIRECT": "true", "AICOST_METRICS_TOKEN": TOKEN}


def _get(url: str, path: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"{url}{path}", headers=headers or {})  # noqa: S310 -- loopback http://
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 -- loopback http://
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _scrape_over_http(url: str) -> dict:
    status, body = _get(url, METRICS, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    return samples(body)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # Committed: gunicorn must see it.
def test_counts_add_up_across_gunicorn_workers(tmp_path):
    """Any worker may answer a scrape; each must report all workers' requests and the same usage."""
    usage_record(model_name="gpt-4o", prompt_tokens=10)
    usage_record(model_name="gpt-4o", prompt_tokens=20)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from an earlier run")
    env = {**PRODUCTION_HTTP, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with gunicorn_serving(database_url=shared_test_database_url(), workers=2, env=env) as url:
        assert not (metrics_dir / "counter_999999.db").exists()
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda _: _get(url, "/healthz")[0], range(60)))
        assert statuses == [200] * 60
        scrapes = [_scrape_over_http(url) for _ in range(8)]
        worker_files = sorted(path.name for path in metrics_dir.glob("counter_*.db"))
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert len(worker_files) == 2, worker_files  # Both workers served requests...
    for scraped in scrapes:  # ...yet every scrape counts all of them (+1: the start-up probe).
        assert value(scraped, REQUESTS, **healthz) == 61
        assert value(scraped, "aicost_model_calls_total", model="gpt-4o", provider="OpenAI") == 2
        assert value(scraped, "aicost_schema_healthy") == 1


@pytest.mark.slow
def test_a_scrape_answers_while_the_database_is_down():
    unreachable = f"postgres://aicost@127.0.0.1:{free_port()}/aicost"
    env = {**PRODUCTION_HTTP, "AICOST_SKIP_SCHEMA_GUARD": "1"}
    with gunicorn_serving(database_url=unreachable, workers=1, env=env) as url:
        scraped = _scrape_over_http(url)
        key_status, key_body = _get(url, METRICS, {"Authorization": "Api-Key aic_0000_unverifiable"})
    assert value(scraped, "aicost_database_up") == 0
    assert value(scraped, "aicost_schema_healthy") == 0
    assert not any(name.startswith("aicost_model_") for name, _labels in scraped)
    assert value(scraped, REQUESTS, method="GET", route="/healthz", status="200") == 1
    # An API key cannot be checked without the database: 503 with a JSON error, not a 500.
    assert key_status == 503
    assert json.loads(key_body)["error"]["code"] == "database_unavailable"
