"""The serving setup for slow clients (issue 19 point 2, README "Deploying"): gunicorn's workers run many
threads and share a small pool of database connections per worker (AICOST_DB_POOL_MAX_SIZE, set by
gunicorn.conf.py), so threads held by slow clients cost no connection and the connections stay few."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageLog

ROOT = Path(__file__).resolve().parent.parent
PRINT_DATABASES = (
    "import json; from aicost import settings; "
    "print(json.dumps({alias: {'age': db['CONN_MAX_AGE'], 'pool': db.get('OPTIONS', {}).get('pool')} "
    "for alias, db in settings.DATABASES.items()}))"
)


def _databases(**env: str) -> dict:
    base = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "AICOST_DB_"))}
    result = subprocess.run(
        [sys.executable, "-c", PRINT_DATABASES],
        cwd=ROOT,
        env={**base, "DEBUG": "true", "AICOST_ENV_FILE": "/dev/null", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_pool_replaces_persistent_connections_on_postgresql_only():
    postgres = "postgres://u:p@127.0.0.1:5432/aicost"
    pooled = _databases(DATABASE_URL=postgres, DATABASE_REPLICA_URL=postgres, AICOST_DB_POOL_MAX_SIZE="8")
    expected = {"min_size": 2, "max_size": 8, "timeout": 3.0, "reconnect_timeout": 5.0}
    assert pooled == {"default": {"age": 0, "pool": expected}, "replica": {"age": 0, "pool": expected}}
    assert _databases(DATABASE_URL=postgres) == {"default": {"age": 60, "pool": None}}  # manage.py, cron, tests.
    sqlite = _databases(DATABASE_URL="sqlite:////tmp/aicost-pool.sqlite3", AICOST_DB_POOL_MAX_SIZE="8")
    assert sqlite == {"default": {"age": 60, "pool": None}}


def _gunicorn_defaults() -> tuple[int, int]:
    """gunicorn.conf.py's threads per worker and its workers' pool size, in an environment without them."""
    script = (
        "import os, runpy; c = runpy.run_path('gunicorn.conf.py'); "
        "print(c['threads'], os.environ['AICOST_DB_POOL_MAX_SIZE'])"
    )
    base = {
        key: value for key, value in os.environ.items() if key not in ("GUNICORN_THREADS", "AICOST_DB_POOL_MAX_SIZE")
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    threads, pool = result.stdout.split()
    return int(threads), int(pool)


def test_gunicorn_runs_100_threads_per_worker_and_a_pool_of_8_by_default():
    assert _gunicorn_defaults() == (100, 8)


def _server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _post(url: str, raw_key: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 -- loopback
        url, data=body, headers={"Authorization": f"Api-Key {raw_key}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 -- loopback
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_serves_many_threads_from_a_few_pooled_connections():
    """One worker with gunicorn.conf.py's defaults (100 threads, a pool of 8): 40 slow uploads hold 40
    threads, 48 batches arrive 24 at a time; every batch is stored, and the server never holds more
    than its pool's 8 connections (one per thread would be up to 64 here)."""
    _key, raw_key = api_key_create(name="pool", scope=ApiKeyScope.READ_WRITE)
    threads, pool_size = _gunicorn_defaults()
    env = {"GUNICORN_THREADS": str(threads), "AICOST_DB_POOL_MAX_SIZE": str(pool_size)}
    slow: list[socket.socket] = []
    most = 0
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1, env=env) as url:
        parts = urlsplit(url)
        for _n in range(40):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            sock.sendall(
                b"POST /api/v1/usage/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Api-Key {raw_key}\r\nContent-Length: 100000\r\n\r\n".encode()
                + b'{"records": ['
            )
            slow.append(sock)
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(1.0):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b" " * 512)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            bodies = [
                json.dumps(
                    [{"model_name": "gpt-4o-mini", "prompt_tokens": 10, "completion_tokens": 5, "purpose": f"p{n}"}]
                    * 20
                ).encode()
                for n in range(48)
            ]
            with ThreadPoolExecutor(max_workers=24) as pool:
                sent = [pool.submit(_post, f"{url}/api/v1/usage/", raw_key, body) for body in bodies]
                while not all(future.done() for future in sent):
                    most = max(most, _server_connections())
                    time.sleep(0.05)
                statuses = [future.result() for future in sent]
            most = max(most, _server_connections())
        finally:
            stop.set()
            trickler.join(5)
            for sock in slow:
                sock.close()
    assert statuses == [201] * 48
    assert UsageLog.objects.count() == 48 * 20  # Nothing of the slow uploads.
    assert 1 <= most <= pool_size, most


@pytest.mark.django_db
def test_postgresql_connections_never_jit_compile():
    """Rollup reads join terms to ranges the planner cannot size; with JIT on it would compile a
    few-millisecond statement for 100-250 ms (settings: jit=off on every PostgreSQL connection)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
