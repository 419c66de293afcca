"""The read replica against a real streaming standby (tests/throwaway_pg.start_standby): reports read
from it, fresh-write reads do not, its lag is reported, an outage falls back to default within a
bound, and after a promotion ingestion continues on it with nothing that got a 201 missing.

Served by gunicorn with DATABASE_REPLICA_URL pointing at the standby's copy of the test database."""

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings

from core.db_routers import REPLICA_PROBE_SECONDS
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from tests.metrics_helpers import samples
from tests.throwaway_pg import ThrowawayPostgres, remove_throwaway, start_standby
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageLog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# A stopped replica: the probe notices it within one probe interval plus its wait for a connection: the
# connect timeout (2 s), or under gunicorn the pool's wait (AICOST_DB_POOL_TIMEOUT); one second of margin.
FALLBACK_BOUND = REPLICA_PROBE_SECONDS + max(2, settings.AICOST_DB_POOL_TIMEOUT) + 1


@pytest.fixture(scope="module")
def standby():
    primary = ThrowawayPostgres.from_environment()
    if primary is None:
        pytest.skip("needs the throwaway PostgreSQL that bin/test starts (a standby is cloned from it)")
    server = start_standby(primary)
    yield server
    remove_throwaway(server)


def _on(server: ThrowawayPostgres, database_url: str) -> str:
    return urlunsplit(urlsplit(database_url)._replace(netloc=f"postgres@127.0.0.1:{server.port}"))


def _sql(url: str, sql: str):
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        return connection.execute(sql).fetchall()


def _request(url: str, key: str, *, data=None) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 -- loopback
        url,
        data=None if data is None else json.dumps(data).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="GET" if data is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 -- loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _batch(tag: str, n: int = 3) -> list[dict]:
    return [
        {"model_name": "gpt-4o", "prompt_tokens": 100, "decision_id": f"{tag}-{i}", "idempotency_key": f"{tag}-{i}"}
        for i in range(n)
    ]


def _calls(base: str, key: str) -> tuple[int, int | None]:
    status, body = _request(f"{base}/api/v1/ai-platforms/stats?{urlencode({'time_range': 'all'})}", key)
    return status, json.loads(body)["data"]["summary"]["total_calls"] if status == 200 else None


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def keys():
    return api_key_create(name="w", scope=ApiKeyScope.WRITE_USAGE)[1], api_key_create(name="r", scope=ApiKeyScope.READ)[
        1
    ]


@contextmanager
def _serving_one_batch_seen(standby, keys, *, tag: str, workers: int) -> Iterator[tuple[str, str]]:
    """gunicorn on the primary with the standby as its replica, once a first batch (3 calls, `tag`) is
    stored and the reports show it: (the server's base URL, the replica's database URL)."""
    writer, reader = keys
    primary_url = shared_test_database_url()
    replica_url = _on(standby, primary_url)
    with gunicorn_serving(database_url=primary_url, workers=workers, env={"DATABASE_REPLICA_URL": replica_url}) as base:
        assert _request(f"{base}/api/v1/usage/", writer, data=_batch(tag))[0] == 201
        assert _wait(lambda: _calls(base, reader) == (200, 3), 20)
        yield base, replica_url


def test_reports_read_the_replica_fresh_writes_do_not_and_its_lag_is_reported(standby, keys):
    writer, reader = keys
    with _serving_one_batch_seen(standby, keys, tag="a", workers=1) as (base, replica_url):
        _sql(replica_url, "SELECT pg_wal_replay_pause()")
        try:
            assert _request(f"{base}/api/v1/usage/", writer, data=_batch("b"))[0] == 201
            # The replica has not replayed batch b: every report still shows batch a alone.
            assert _calls(base, reader) == (200, 3)
            status, trend = _request(f"{base}/api/v1/ai-platforms/cost-trend-daily?days=7", reader)
            assert status == 200
            assert sum(day["calls"] for day in json.loads(trend)["data"]["daily_trend"]) == 3
            status, csv = _request(f"{base}/api/v1/usage/export.csv?time_range=30d", reader)
            assert status == 200
            assert csv.decode().count("\r\n") == 1 + 3
            # Idempotency reads the primary: the retry of batch b is recognised, not stored twice.
            assert _request(f"{base}/api/v1/usage/", writer, data=_batch("b"))[0] == 201
            assert UsageLog.objects.count() == 6
            # The lag, in the health API and /metrics.
            status, health = _request(f"{base}/api/v1/admin/health/database", reader)
            replica = json.loads(health)["data"]["replica"]
            assert (replica["up"], replica["in_recovery"]) == (True, True), replica
            assert replica["lag_bytes"] > 0, replica
            status, scraped = _request(f"{base}/metrics", reader)
            scraped = samples(scraped.decode())
            assert scraped[("aicost_replica_up", frozenset())] == 1
            assert scraped[("aicost_replica_lag_bytes", frozenset())] > 0
        finally:
            _sql(replica_url, "SELECT pg_wal_replay_resume()")
        assert _wait(lambda: _calls(base, reader) == (200, 6), 20)

        def caught_up():
            replica = json.loads(_request(f"{base}/api/v1/admin/health/database", reader)[1])["data"]["replica"]
            return replica["lag_bytes"] == 0 and replica["lag_seconds"] == 0

        assert _wait(caught_up, 20)


def test_a_stopped_replica_falls_back_to_the_primary_within_the_bound_and_is_used_again(standby, keys):
    writer, reader = keys
    with _serving_one_batch_seen(standby, keys, tag="c", workers=2) as (base, replica_url):
        standby.stop(mode="fast")
        stopped = time.monotonic()
        answers = []
        while time.monotonic() - stopped < FALLBACK_BOUND + 4:
            answers.append((time.monotonic() - stopped, *_calls(base, reader)))
            time.sleep(0.05)
        assert all(status in (200, 503) for _, status, _ in answers), answers  # Never a 500.
        late = [(t, status, calls) for t, status, calls in answers if t > FALLBACK_BOUND]
        assert late
        assert all(status == 200 and calls == 3 for _, status, calls in late), late
        # Written while the replica is down: the primary serves the reports, so it is seen at once.
        assert _request(f"{base}/api/v1/usage/", writer, data=_batch("d"))[0] == 201
        assert _calls(base, reader) == (200, 6)

        standby.start()
        assert _wait(lambda: _sql(replica_url, "SELECT count(*) FROM ai_model_usage_log")[0][0] == 6, 30)
        _sql(replica_url, "SELECT pg_wal_replay_pause()")
        try:
            assert _request(f"{base}/api/v1/usage/", writer, data=_batch("e"))[0] == 201
            time.sleep(FALLBACK_BOUND)  # Every worker has probed the replica again since it came back.
            # Back on the replica: the paused replay shows in the reports again.
            assert [_calls(base, reader) for _ in range(6)] == [(200, 6)] * 6
        finally:
            _sql(replica_url, "SELECT pg_wal_replay_resume()")
        assert _wait(lambda: _calls(base, reader) == (200, 9), 20)


def test_after_promoting_the_replica_ingestion_continues_and_nothing_acknowledged_is_missing(standby, keys):
    writer, _reader = keys
    primary_url = shared_test_database_url()
    replica_url = _on(standby, primary_url)
    acknowledged = []
    with gunicorn_serving(database_url=primary_url, workers=1, env={"DATABASE_REPLICA_URL": replica_url}) as base:
        for n in range(10):
            tag = f"p{n}-{uuid.uuid4().hex[:6]}"
            if _request(f"{base}/api/v1/usage/", writer, data=_batch(tag))[0] == 201:
                acknowledged.append(tag)
    # A planned switchover: writes stopped, the standby has replayed all of the primary's WAL.
    (lsn,) = _sql(primary_url, "SELECT pg_current_wal_lsn()::text")[0]
    assert _wait(lambda: _sql(replica_url, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")[0][0], 30)
    standby.promote()
    assert _sql(replica_url, "SELECT pg_is_in_recovery()")[0][0] is False
    with gunicorn_serving(database_url=replica_url, workers=1) as base:
        for n in range(10):
            tag = f"q{n}-{uuid.uuid4().hex[:6]}"
            status, body = _request(f"{base}/api/v1/usage/", writer, data=_batch(tag))
            assert status == 201, body
            acknowledged.append(tag)
    stored = {row[0] for row in _sql(replica_url, "SELECT decision_id FROM ai_model_usage_log")}
    expected = {f"{tag}-{i}" for tag in acknowledged for i in range(3)}
    assert expected <= stored, sorted(expected - stored)[:5]
    assert len(acknowledged) == 20
