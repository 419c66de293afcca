"""OTLP ingestion throughput: exporters post GenAI spans to POST /v1/traces through gunicorn; every
model-call span must be stored exactly once.

    python -m bench.otlp [--clients 8] [--seconds 15] [--workers 4] [--spans 512] [--noise 0.5] [--gzip]
                         [--prebuilt 30]

On demand, bounded in time, loopback only. Starts its own throwaway PostgreSQL 15 (durable) unless
DATABASE_URL is set, migrates, starts gunicorn with gunicorn.conf.py, and runs `--clients` threads
that each post binary-protobuf ExportTraceServiceRequests of `--spans` GenAI chat spans (512: the
SDK's BatchSpanProcessor's default batch), plus `--noise` as many spans without GenAI attributes
(HTTP spans around the calls, as an instrumented service exports them), for `--seconds`. One export
in five is sent twice (an exporter retrying after a lost answer): the retry must store nothing new.
Each exporter builds `--prebuilt` exports before the clock starts (then more as it goes).
Prints GenAI spans stored per second (the goal: at least 5,000), requests, latency percentiles and
statuses, the CPU gunicorn, PostgreSQL and the exporter threads spent per 1000 GenAI spans (as
bench.load measures it), then checks the database and exits 1 on any discrepancy.
"""

import argparse
import gzip
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

from bench.load import _postmaster_pid, _tree_cpu
from tests.throwaway_pg import rerun_without_database

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-haiku-4-5", "deepseek-chat", "no-such-model"]


def _export_body(rng: random.Random, spans: int, noise: int, compress: bool) -> tuple[bytes, int]:
    """One export request as an SDK sends it: a trace per call, a chat span with the GenAI attributes
    the OpenAI instrumentation writes, and noise spans without them."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    from tests.otlp_helpers import key_values

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": "bench", "telemetry.sdk.language": "python"}))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"
    now = time.time_ns()
    for index in range(spans + noise):
        start = now - rng.randint(1, 3_600) * 10**9
        span = Span(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rng.randint(100, 5_000) * 10**6,
        )
        if index < spans:
            model = rng.choice(MODELS)
            prompt = rng.randint(10, 8000)
            span.name = f"chat {model}"
            span.attributes.extend(
                key_values(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": model,
                        "gen_ai.response.model": model,
                        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
                        "gen_ai.usage.input_tokens": prompt,
                        "gen_ai.usage.output_tokens": rng.randint(1, 2000),
                        "gen_ai.usage.cache_read.input_tokens": prompt // 2,
                        "user.id": rng.randint(1, 100),
                        "server.address": "api.openai.com",
                    }
                )
            )
            if rng.random() < 0.03:
                span.status.code = Status.STATUS_CODE_ERROR
                span.status.message = "Error code: 429 - rate limited"
        else:
            span.name = "POST /checkout"
            span.attributes.extend(key_values({"http.request.method": "POST", "http.response.status_code": 200}))
        scope.spans.append(span)
    body = request.SerializeToString()
    return (gzip.compress(body, compresslevel=1) if compress else body), spans


class Exporter(threading.Thread):
    def __init__(self, *, url: str, key: str, number: int, args):
        super().__init__(daemon=True)
        self.url, self.key, self.number, self.args = url, key, number, args
        self.until = 0.0
        self.rng = random.Random(number)
        # Built before the clock starts, so the load generator takes little CPU from the server.
        noise = int(args.spans * args.noise)
        self.bodies = [_export_body(self.rng, args.spans, noise, args.gzip) for _ in range(args.prebuilt)]
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.accepted = 0
        self.partial = 0

    def _post(self, body: bytes) -> int:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/x-protobuf"}
        if self.args.gzip:
            headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(f"{self.url}/v1/traces", data=body, headers=headers)  # noqa: S310 -- loopback
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 -- loopback
                status, answer = response.status, ExportTraceServiceResponse.FromString(response.read())
                self.partial += answer.partial_success.rejected_spans
        except urllib.error.HTTPError as error:
            status = error.code
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] += 1
        return status

    def run(self) -> None:
        noise = int(self.args.spans * self.args.noise)
        export_no = 0
        while time.monotonic() < self.until:
            if self.bodies:
                body, spans = self.bodies.pop()
            else:
                body, spans = _export_body(self.rng, self.args.spans, noise, self.args.gzip)
            sends = 2 if export_no % 5 == 0 else 1
            accepted = False
            for _ in range(sends):
                accepted = self._post(body) == 200 or accepted
            if accepted:
                self.accepted += spans
            export_no += 1


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000 if ordered else 0.0


def _verify(accepted: int) -> list[str]:
    from django.db import connection

    from usage.services import usage_counters_reconcile

    problems = []
    with connection.cursor() as cursor:
        # One trace per call here, so each stored call's decision_id (the trace id) is its own.
        cursor.execute("SELECT count(*), count(DISTINCT decision_id) FROM ai_model_usage_log")
        rows, distinct = cursor.fetchone()
    if rows != distinct:
        problems.append(f"{rows - distinct} span(s) stored more than once")
    if rows != accepted:
        problems.append(f"{accepted} GenAI spans accepted but {rows} stored")
    differences = usage_counters_reconcile(fix=False)
    if differences:
        problems.append(f"{len(differences)} counter(s) differ from the log: {differences[:3]}")
    return problems


def _bench(args) -> int:
    from bench.django_setup import django_setup_for_bench

    django_setup_for_bench()
    from django.core.management import call_command

    from tests.gunicorn_server import gunicorn_serving
    from usage.keys import api_key_create
    from usage.models import ApiKeyScope

    call_command("migrate", verbosity=0)
    _key, raw_key = api_key_create(name="otlp-bench", scope=ApiKeyScope.WRITE_USAGE)
    with gunicorn_serving(database_url=os.environ["DATABASE_URL"], workers=args.workers) as url:
        exporters = [Exporter(url=url, key=raw_key, number=n, args=args) for n in range(args.clients)]
        until = time.monotonic() + args.seconds
        for exporter in exporters:
            exporter.until = until
        postmaster = _postmaster_pid()
        cpu_before = (_tree_cpu(os.getpid(), with_root=False), _tree_cpu(postmaster), time.process_time())
        started = time.perf_counter()
        for exporter in exporters:
            exporter.start()
        for exporter in exporters:
            exporter.join(timeout=args.seconds + 120)
        elapsed = time.perf_counter() - started
        cpu_after = (_tree_cpu(os.getpid(), with_root=False), _tree_cpu(postmaster), time.process_time())

    latencies = [latency for exporter in exporters for latency in exporter.latencies]
    statuses = sum((exporter.statuses for exporter in exporters), Counter())
    accepted = sum(exporter.accepted for exporter in exporters)
    noise = int(args.spans * args.noise)
    print(
        f"{args.clients} exporters, {args.workers} gunicorn workers, exports of {args.spans} GenAI spans "
        f"+ {noise} others{', gzip' if args.gzip else ''}, {elapsed:.1f} s"
    )
    print(f"requests {len(latencies):,}  statuses {dict(statuses)}")
    print(f"stored {accepted:,} GenAI spans = {accepted / elapsed:,.0f} spans/s (goal: 5,000)")
    received = accepted * (args.spans + noise) / args.spans
    print(f"  all spans received (GenAI and others, re-sent exports not counted): {received / elapsed:,.0f} spans/s")
    print(
        f"latency p50 {_percentile(latencies, 0.5):.0f} ms  p95 {_percentile(latencies, 0.95):.0f} ms  "
        f"p99 {_percentile(latencies, 0.99):.0f} ms"
    )
    per_thousand = [
        10**6 * (after - before) / max(1, accepted) for before, after in zip(cpu_before, cpu_after, strict=True)
    ]
    print(  # Less sensitive to other work on the machine than spans/s.
        f"CPU per 1000 GenAI spans: gunicorn {per_thousand[0]:.0f} ms, PostgreSQL {per_thousand[1]:.0f} ms, "
        f"exporters {per_thousand[2]:.0f} ms"
    )
    problems = _verify(accepted)
    if set(statuses) - {200}:
        problems.append(f"non-200 answers: {dict(statuses)}")
    if any(exporter.partial for exporter in exporters):
        problems.append(f"{sum(exporter.partial for exporter in exporters)} span(s) rejected")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if not problems:
        print("every accepted GenAI span stored exactly once; counters equal the log")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--noise", type=float, default=0.5, help="spans without GenAI attributes, per GenAI span")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--prebuilt", type=int, default=30, help="exports each exporter builds before the clock starts")
    args = parser.parse_args()
    status = rerun_without_database("bench.otlp", durable=True)
    if status is not None:
        return status
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
