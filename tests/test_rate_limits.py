"""Per-key rate limits (usage.throttles): ingest records and read requests per minute, counted in the
database so every worker shares them; over the limit a 429 with Retry-After and nothing stored."""

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from google.rpc import code_pb2, status_pb2

from tests.conftest import HttpsClient
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from tests.otlp_helpers import chat, export, span
from tests.sqlite_process import sqlite_python
from usage.keys import RATE_WINDOW_SECONDS, _RateLeases, api_key_create, api_key_rate_take
from usage.models import ApiKey, ApiKeyRateKind, ApiKeyRateWindow, ApiKeyScope, UsageLog

INGEST, STATS = "/api/v1/usage/", "/api/v1/ai-platforms/stats"


def _record(n: int) -> dict:
    return {"model_name": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5, "purpose": f"r{n}"}


def _ingest(raw_key: str, count: int, start: int = 0):
    records = [_record(start + n) for n in range(count)]
    return HttpsClient().post(
        INGEST, data=json.dumps(records), content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {raw_key}"
    )


def _read(raw_key: str):
    return HttpsClient().get(STATS, HTTP_AUTHORIZATION=f"Api-Key {raw_key}")


def _clear_of_the_window_end(margin: float = 8.0) -> None:
    """Wait (at most `margin` s) so a few requests all fall in one window, whatever the clock says."""
    left = RATE_WINDOW_SECONDS - time.time() % RATE_WINDOW_SECONDS
    if left < margin:
        time.sleep(left + 0.05)


@pytest.mark.django_db
def test_a_batch_over_the_ingest_limit_is_refused_whole_with_retry_after():
    _clear_of_the_window_end()
    _api_key, raw_key = api_key_create(name="limited", ingest_records_per_minute=5)
    assert _ingest(raw_key, 3).status_code == 201
    refused = _ingest(raw_key, 3, start=3)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= RATE_WINDOW_SECONDS
    body = refused.json()
    assert body["success"] is False
    assert body["error"]["code"] == "throttled"
    assert "5 records per minute" in body["error"]["message"]
    assert UsageLog.objects.count() == 3  # Nothing of the refused batch.
    assert _ingest(raw_key, 2, start=6).status_code == 201  # Exactly up to the limit.
    assert _ingest(raw_key, 1, start=8).status_code == 429
    assert sorted(UsageLog.objects.values_list("purpose", flat=True)) == ["r0", "r1", "r2", "r6", "r7"]


@pytest.mark.django_db
def test_a_batch_larger_than_the_limit_itself_says_to_send_smaller_batches():
    _api_key, raw_key = api_key_create(name="small", ingest_records_per_minute=2)
    refused = _ingest(raw_key, 3)
    assert refused.status_code == 429
    assert "send smaller batches" in refused.json()["error"]["message"]
    assert not UsageLog.objects.exists()
    assert not ApiKeyRateWindow.objects.exists()  # Not counted: it never fits.
    assert _ingest(raw_key, 2).status_code == 201


@pytest.mark.django_db
def test_a_key_without_a_limit_is_never_throttled_nor_counted():
    _api_key, raw_key = api_key_create(name="free", scope=ApiKeyScope.READ_WRITE)
    for n in range(30):
        assert _ingest(raw_key, 10, start=10 * n).status_code == 201
        assert _read(raw_key).status_code == 200
    assert UsageLog.objects.count() == 300
    assert not ApiKeyRateWindow.objects.exists()


@pytest.mark.django_db
def test_a_limit_costs_one_statement_per_lease_and_none_for_the_requests_it_pays(settings):
    settings.AICOST_RATE_LEASE_PROCESSES = 2  # A lease: a quarter of what the row has left...
    settings.AICOST_RATE_LEASE_MAX = 5  # ... at most 5 requests.
    _clear_of_the_window_end()
    _free, free_key = api_key_create(name="free", scope=ApiKeyScope.READ)
    limited, limited_key = api_key_create(name="limited", scope=ApiKeyScope.READ, read_requests_per_minute=1000)
    _read(free_key), _read(limited_key)  # Warm: caches of the stats' first request; the first lease (1 of 5 spent).
    with CaptureQueriesContext(connection) as free:
        assert _read(free_key).status_code == 200
    extra = []
    for _ in range(10):
        with CaptureQueriesContext(connection) as queries:
            assert _read(limited_key).status_code == 200
        rate = [query["sql"] for query in queries.captured_queries if "ai_api_key_rate" in query["sql"]]
        assert len(queries.captured_queries) == len(free.captured_queries) + len(rate)
        extra.append(len(rate))
    assert extra == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # One take per lease of 5.
    row = ApiKeyRateWindow.objects.get(api_key=limited, kind=ApiKeyRateKind.READ)
    assert row.used == 15  # Three leases taken from the shared row, 11 of them spent.


def _leases_and_key(limit_name: str = "leased"):
    api_key = api_key_create(name=limit_name)[0]
    return api_key, (_RateLeases(), _RateLeases())  # Two processes' leases, in one test process.


def _admit(leases: _RateLeases, api_key: ApiKey, at: datetime, amount: int = 1, limit: int = 40):
    return leases.admit(api_key_id=api_key.pk, kind=ApiKeyRateKind.INGEST, amount=amount, limit=limit, now=at)


def _used(api_key: ApiKey) -> int:
    return ApiKeyRateWindow.objects.get(api_key=api_key, kind=ApiKeyRateKind.INGEST).used


@pytest.mark.django_db
def test_processes_leasing_from_one_row_admit_the_limit_together_and_never_more(settings):
    settings.AICOST_RATE_LEASE_PROCESSES, settings.AICOST_RATE_LEASE_MAX = 2, 10_000
    api_key, (first, second) = _leases_and_key()
    minute = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    admitted = {"first": 0, "second": 0}
    for n in range(100):  # Both processes get traffic: every leased token is spent.
        name, leases = ("first", first) if n % 2 else ("second", second)
        admitted[name] += _admit(leases, api_key, minute + timedelta(seconds=n / 10)).allowed
    assert admitted == {"first": 20, "second": 20}
    assert _used(api_key) == 40
    # A new window: the leases of the old one expired with it, and the row starts again.
    later = minute + timedelta(seconds=60)
    assert _admit(first, api_key, later).allowed
    assert _used(api_key) == 10  # A lease of a quarter of the limit.


@pytest.mark.django_db
def test_a_process_may_refuse_while_another_holds_leased_tokens_until_the_window_ends(settings):
    settings.AICOST_RATE_LEASE_PROCESSES, settings.AICOST_RATE_LEASE_MAX = 2, 10_000
    api_key, (idle, busy) = _leases_and_key()
    minute = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert _admit(idle, api_key, minute).allowed  # Leases 10, spends 1: 9 held.
    busy_admitted = sum(_admit(busy, api_key, minute + timedelta(seconds=1)).allowed for _ in range(60))
    assert busy_admitted == 30  # The row's 30 others; the idle process's 9 are stranded there...
    refused = _admit(busy, api_key, minute + timedelta(seconds=45.5))
    assert (refused.allowed, refused.retry_after) == (False, 15)
    assert sum(_admit(idle, api_key, minute + timedelta(seconds=2)).allowed for _ in range(20)) == 9  # ... not lost.
    assert _used(api_key) == 40
    assert _admit(busy, api_key, minute + timedelta(seconds=61)).allowed  # A new window for everyone.


@pytest.mark.django_db
def test_leases_shrink_as_the_window_fills_and_a_request_takes_just_what_it_lacks_when_less_is_left(settings):
    settings.AICOST_RATE_LEASE_PROCESSES, settings.AICOST_RATE_LEASE_MAX = 1, 10_000  # A lease: half of what is left.
    api_key, (leases, other) = _leases_and_key()
    minute = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

    def admit(process: _RateLeases, amount: int) -> bool:
        return _admit(process, api_key, minute, amount=amount, limit=100).allowed

    with CaptureQueriesContext(connection) as queries:
        assert admit(leases, 3)  # A lease of 50: 47 held.
        assert _used(api_key) == 50
        assert admit(leases, 40)  # From the lease: 7 held.
        assert admit(leases, 10)  # Lacks 3, takes a lease of 25 (the row had 50 left): 22 held.
        assert _used(api_key) == 75
        assert admit(leases, 30)  # Lacks 8, takes a lease of 12: 4 held.
        assert _used(api_key) == 87
        assert admit(other, 10)  # Its lease of 50 is refused (13 left): just the 10 it lacks.
        assert _used(api_key) == 97
        assert admit(leases, 6)  # Lacks 2; its lease of 6 is refused (3 left): just 2.
        assert _used(api_key) == 99
        assert not admit(leases, 2)  # 1 left: refused, nothing taken.
        assert admit(leases, 1)
        assert _used(api_key) == 100
    takes = [query for query in queries.captured_queries if query["sql"].lstrip().startswith("INSERT")]
    assert len(takes) == 1 + 0 + 1 + 1 + 2 + 2 + 1 + 1


@pytest.mark.django_db
def test_a_changed_limit_drops_the_lease_taken_under_the_old_one(settings):
    settings.AICOST_RATE_LEASE_PROCESSES, settings.AICOST_RATE_LEASE_MAX = 1, 10_000
    api_key, (leases, _other) = _leases_and_key()
    minute = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert _admit(leases, api_key, minute, limit=100).allowed  # A lease of 50: 49 held.
    assert _used(api_key) == 50
    assert not _admit(leases, api_key, minute, limit=50).allowed  # Lowered: the row's 50 are all it allows.
    assert _admit(leases, api_key, minute, limit=60).allowed  # Raised: 10 left in the row, its lease of 30 refused.
    assert _used(api_key) == 51


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_threads_of_one_process_spend_one_lease_and_admit_exactly_the_limit(settings):
    settings.AICOST_RATE_LEASE_PROCESSES, settings.AICOST_RATE_LEASE_MAX = 2, 10_000
    api_key = api_key_create(name="threads")[0]
    leases, limit = _RateLeases(), 150
    now = datetime.now(UTC).replace(second=0, microsecond=0)  # One window however long the threads take.

    def admit_many(_thread: int) -> int:
        try:
            return sum(_admit(leases, api_key, now, limit=limit).allowed for _ in range(40))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        admitted = sum(pool.map(admit_many, range(8)))
    assert admitted == limit  # 320 asked: the process refused only with its lease empty and the row full.
    assert _used(api_key) == limit


@pytest.mark.django_db
def test_reads_over_the_limit_get_429_and_staff_sessions_are_not_limited(staff_client):
    _clear_of_the_window_end()
    _api_key, raw_key = api_key_create(name="reader", scope=ApiKeyScope.READ, read_requests_per_minute=2)
    assert [_read(raw_key).status_code for _ in range(3)] == [200, 200, 429]
    refused = _read(raw_key)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "2 read requests per minute" in refused.json()["error"]["message"]
    assert all(staff_client.get(STATS).status_code == 200 for _ in range(5))


@pytest.mark.django_db
def test_ingest_and_read_limits_are_separate_counts():
    _clear_of_the_window_end()
    _api_key, raw_key = api_key_create(
        name="both", scope=ApiKeyScope.READ_WRITE, ingest_records_per_minute=3, read_requests_per_minute=1
    )
    assert _ingest(raw_key, 3).status_code == 201
    assert _read(raw_key).status_code == 200
    assert _read(raw_key).status_code == 429
    assert _ingest(raw_key, 1, start=3).status_code == 429


@pytest.mark.django_db
def test_the_window_moves_on_and_a_late_request_never_takes_it_back():
    api_key, _raw = api_key_create(name="clock")
    minute = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

    def take(at: datetime, amount: int = 1):
        return api_key_rate_take(api_key_id=api_key.pk, kind=ApiKeyRateKind.INGEST, amount=amount, limit=3, now=at)

    assert take(minute, 3).allowed
    refused = take(minute + timedelta(seconds=45.5))
    assert not refused.allowed
    assert refused.retry_after == 15
    assert take(minute + timedelta(seconds=60), 2).allowed  # A new window: counted from zero.
    assert not take(minute + timedelta(seconds=59), 2).allowed  # Late, from the old window: counts in the new one.
    assert take(minute + timedelta(seconds=59), 1).allowed
    row = ApiKeyRateWindow.objects.get(api_key=api_key, kind=ApiKeyRateKind.INGEST)
    assert (row.window_start, row.used) == (int(minute.timestamp()) + 60, 3)


@pytest.mark.django_db
def test_otlp_exports_count_their_spans_against_the_ingest_limit():
    _clear_of_the_window_end()
    _api_key, raw_key = api_key_create(name="otel", ingest_records_per_minute=2)

    def post(*spans):
        return HttpsClient().post(
            "/v1/traces",
            data=export(*spans).SerializeToString(),
            content_type="application/x-protobuf",
            HTTP_AUTHORIZATION=f"Bearer {raw_key}",
        )

    assert post(span(chat())).status_code == 200
    refused = post(span(chat()), span(chat()))
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert status_pb2.Status.FromString(refused.content).code == code_pb2.RESOURCE_EXHAUSTED
    assert UsageLog.objects.count() == 1
    assert post(span(chat())).status_code == 200
    assert UsageLog.objects.count() == 2


@pytest.mark.django_db
def test_staff_set_and_clear_a_keys_limits_in_admin(client, staff_user):
    _clear_of_the_window_end()
    client.force_login(staff_user)
    api_key, raw_key = api_key_create(name="edited", scope=ApiKeyScope.READ_WRITE)
    url = reverse("admin:usage_apikey_change", args=[api_key.pk])
    assert "ingest_records_per_minute" in client.get(url).content.decode()
    form = {"name": "edited", "ingest_records_per_minute": "1", "read_requests_per_minute": ""}
    assert client.post(url, form).status_code == 302
    api_key.refresh_from_db()
    assert (api_key.ingest_records_per_minute, api_key.read_requests_per_minute) == (1, None)
    assert _ingest(raw_key, 1).status_code == 201
    assert _ingest(raw_key, 1, start=1).status_code == 429
    assert client.post(url, {**form, "ingest_records_per_minute": ""}).status_code == 302
    assert _ingest(raw_key, 1, start=2).status_code == 201  # Cleared: unlimited again.
    created = client.post(
        reverse("admin:usage_apikey_add"),
        {"name": "new", "scope": "read", "ingest_records_per_minute": "", "read_requests_per_minute": "7"},
    )
    assert created.status_code == 302
    assert ApiKey.objects.get(name="new").read_requests_per_minute == 7


def _http(url: str, raw_key: str, body: bytes | None = None) -> tuple[int, str | None]:
    request = urllib.request.Request(url, data=body, headers={"Authorization": f"Api-Key {raw_key}"})  # noqa: S310
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_limits_are_shared_by_two_gunicorn_workers():
    """Each worker leases from the shared rows (GUNICORN_WORKERS=2: a quarter of what is left): together
    they never admit more than the limit; a worker may refuse while the other still holds a lease's
    remainder, less than half the limit in all (README, Rate limits)."""
    limit = 40
    api_key, raw_key = api_key_create(
        name="shared", scope=ApiKeyScope.READ_WRITE, ingest_records_per_minute=limit, read_requests_per_minute=limit
    )
    with gunicorn_serving(database_url=shared_test_database_url(), workers=2) as url:
        _clear_of_the_window_end(margin=20)
        bodies = [json.dumps([_record(n)]).encode() for n in range(3 * limit)]
        with ThreadPoolExecutor(max_workers=8) as pool:  # Concurrent connections: both workers serve.
            ingested = list(pool.map(lambda body: _http(f"{url}{INGEST}", raw_key, body), bodies))
            reads = list(pool.map(lambda _n: _http(f"{url}{STATS}", raw_key), range(3 * limit)))
    accepted = sum(status == 201 for status, _retry in ingested)
    assert limit // 2 < accepted <= limit
    assert sorted(status for status, _retry in ingested) == [201] * accepted + [429] * (3 * limit - accepted)
    assert all(1 <= int(retry) <= RATE_WINDOW_SECONDS for status, retry in ingested if status == 429)
    assert UsageLog.objects.count() == accepted  # The 429s stored nothing.
    read = sum(status == 200 for status, _retry in reads)
    assert limit // 2 < read <= limit
    assert sorted(status for status, _retry in reads) == [200] * read + [429] * (3 * limit - read)
    rows = ApiKeyRateWindow.objects.filter(api_key=api_key)
    assert sorted(rows.values_list("kind", "used")) == [(ApiKeyRateKind.INGEST, limit), (ApiKeyRateKind.READ, limit)]


SQLITE_SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
from django.test import Client
from usage.keys import api_key_create
from usage.models import UsageLog

call_command("migrate", verbosity=0)
import time
left = 60 - time.time() % 60
if left < 8:
    time.sleep(left + 0.05)  # All the requests below in one window.
raw_key = api_key_create(name="s", scope="read_write", ingest_records_per_minute=3, read_requests_per_minute=1)[1]
auth = {"HTTP_AUTHORIZATION": f"Api-Key {raw_key}"}
record = {"model_name": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1}
post = lambda n: Client().post("/api/v1/usage/", data=json.dumps([record] * n), content_type="application/json", **auth)
statuses = [post(2).status_code, post(2).status_code, post(1).status_code, post(1).status_code]
assert statuses == [201, 429, 201, 429], statuses
refused = post(1)
assert int(refused["Retry-After"]) >= 1, refused.headers
assert UsageLog.objects.count() == 3
reads = [Client().get("/api/v1/ai-platforms/stats", **auth).status_code for _ in range(2)]
assert reads == [200, 429], reads
print("ok")
"""


def test_rate_limits_on_sqlite(tmp_path):
    result = sqlite_python(tmp_path / "db.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
