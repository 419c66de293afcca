"""Prometheus metrics: HTTP requests per route, usage per model and the schema's health.

Request metrics are counted by a middleware in each process. Under gunicorn's several workers they
live in files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, set up by
gunicorn.conf.py) and every scrape adds up all workers' files, so whichever worker answers reports
the totals. Usage per model and schema health are read from the database at scrape time: every
worker sees the same numbers, and they survive restarts.
"""

import logging
import os
import time

from django.db import DatabaseError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from core.db_errors import database_unavailable
from core.db_routers import replica_lag
from pricing.selectors import model_providers, reporting_currency
from schemaguard.guard import SchemaHealth, schema_health
from usage.checks import LOG_DISAGREES as USAGE_LOG_DISAGREES
from usage.selectors import (
    reporting_cost_total,
    unconverted_calls_by_model,
    unpriced_calls_by_model,
    usage_counters_list,
)

logger = logging.getLogger("aicost.metrics")

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Label values are bounded: a known method or "other", a URL pattern (never the raw path) or "unmatched".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"

HTTP_REQUESTS = Counter(
    "aicost_http_requests",
    "HTTP requests answered, by method, URL pattern and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "aicost_http_request_duration_seconds",
    "Time from the request entering Django to the response leaving it, by method and URL pattern.",
    ["method", "route"],
)


def multiprocess_mode() -> bool:
    # prometheus_client decides at import from the same variable, so both agree.
    return MULTIPROCESS_VARIABLE in os.environ


def request_route(request) -> str:
    """The matched URL pattern, e.g. "/api/v1/usage/"; "unmatched" when no pattern matched."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return UNMATCHED_ROUTE
    return "/" + match.route


def request_method(request) -> str:
    method = (request.method or "").upper()
    return method if method in KNOWN_METHODS else OTHER_METHOD


class RequestMetricsMiddleware:
    """Counts and times every response. First in MIDDLEWARE, so redirects and errors count too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method, route = request_method(request), request_route(request)
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_REQUEST_DURATION.labels(method, route).observe(elapsed)
        return response


def _usage_families() -> list:
    """Calls and cost per priced model, from the counters ingestion keeps (usage.models.UsageCounter)."""
    calls = CounterMetricFamily(
        "aicost_model_calls", "LLM calls recorded per priced model, all time.", labels=["model", "provider"]
    )
    cost = CounterMetricFamily(
        "aicost_model_cost",
        "Cost of the LLM calls recorded per priced model, all time, in the model's currency.",
        labels=["model", "provider", "currency"],
    )
    priced = model_providers()
    for counter in usage_counters_list():
        if counter.model_name not in priced:
            continue  # Its calls are in aicost_model_unpriced_calls.
        provider, currency = priced[counter.model_name]
        calls.add_metric([counter.model_name, provider], counter.total_calls)
        # The one place money becomes float: Prometheus samples are float64. The exact Decimal
        # stays in the database and the JSON APIs; dashboards only need it approximately.
        cost.add_metric([counter.model_name, provider, currency], float(counter.total_cost))
    unpriced = CounterMetricFamily(
        "aicost_model_unpriced_calls",
        "LLM calls recorded without a cost (unknown or disabled model), per model, all time.",
        labels=["model"],
    )
    for model_name, count in sorted(unpriced_calls_by_model().items()):
        unpriced.add_metric([model_name], count)
    unconverted = CounterMetricFamily(
        "aicost_model_unconverted_calls",
        "LLM calls priced but without a cost in the reporting currency (no exchange rate in force at their "
        "timestamp), per model, all time: not in aicost_cost_total.",
        labels=["model"],
    )
    for model_name, count in sorted(unconverted_calls_by_model().items()):
        unconverted.add_metric([model_name], count)
    total = CounterMetricFamily(
        "aicost_cost",
        "Cost of all LLM calls recorded, all models, all time, in the reporting currency "
        "(AICOST_REPORTING_CURRENCY; unconverted calls left out).",
        labels=["currency"],
    )
    total.add_metric([reporting_currency()], float(reporting_cost_total()))
    return [calls, cost, unpriced, unconverted, total]


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _findings_family(health: SchemaHealth) -> GaugeMetricFamily:
    """One sample per finding id present (errors and warnings alike): alert on any of them."""
    findings = GaugeMetricFamily(
        "aicost_schema_findings",
        "Schema guard findings by id (aicost.E001..., aicost.W011, aicost.W012) and level; absent when none.",
        labels=["id", "level"],
    )
    warnings = set(health.warnings)
    for finding_id in sorted(set(health.findings)):
        level = "warning" if finding_id in warnings else "error"
        findings.add_metric([finding_id, level], health.findings.count(finding_id))
    return findings


class DatabaseCollector:
    """Read at scrape time. A database that is down or broken gives 0 gauges, never an error."""

    def collect(self):
        try:
            health = schema_health()
        except DatabaseError as error:  # The connection dropped in the middle of the check.
            logger.warning("metrics: schema check failed: %s", error)
            health = SchemaHealth(healthy=False, database_up=False, missing_tables=[], findings=[])
        database_up = health.database_up
        usage: list = []
        if database_up:
            try:
                usage = _usage_families()
            except DatabaseError as error:
                logger.warning("metrics: usage counters unreadable: %s", error)
                database_up = not database_unavailable(error)
        yield _gauge("aicost_database_up", "1 when the database answered the last check, else 0.", int(database_up))
        yield _gauge(
            "aicost_schema_healthy",
            "1 when the live schema matches the models (schema guard), else 0. Checked every few seconds.",
            int(health.healthy and database_up),
        )
        yield _gauge(
            "aicost_schema_missing_tables",
            "Tables the models need that the database lacks.",
            len(health.missing_tables),
        )
        yield _findings_family(health)
        yield _gauge(
            "aicost_usage_log_consistent",
            "1 when the usage log agrees with its rollups, counters and retired months (no aicost.W012), else 0.",
            int(database_up and USAGE_LOG_DISAGREES not in health.findings),
        )
        yield from usage
        yield from _replica_families()


def _replica_families():
    """The read replica's gauges, only when one is configured (DATABASE_REPLICA_URL)."""
    state = replica_lag()
    if state is None:
        return
    yield _gauge("aicost_replica_up", "1 when the read replica answered at scrape time, else 0.", int(state["up"]))
    if state["lag_seconds"] is not None:
        yield _gauge(
            "aicost_replica_lag_seconds",
            "Replication delay of the read replica: age of its last replayed transaction (0 when caught up).",
            state["lag_seconds"],
        )
    if state["lag_bytes"] is not None:
        yield _gauge("aicost_replica_lag_bytes", "WAL bytes the read replica has not replayed yet.", state["lag_bytes"])


def metrics_registry() -> CollectorRegistry:
    """What one scrape exports: request metrics of this process or of all workers, plus the database's."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)  # A registry is itself a collector: this process's metrics.
    registry.register(DatabaseCollector())
    return registry


def metrics_exposition(*, accept: str | None) -> tuple[bytes, str]:
    """The scrape body and its content type, in the format the scraper asked for (OpenMetrics or text)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(metrics_registry()), content_type
