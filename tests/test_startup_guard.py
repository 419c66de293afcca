"""Startup refuses a broken schema: runserver and gunicorn exit non-zero before serving.

The subprocesses need the broken schema committed, so they get a scratch database of their own
on the test server, migrated, with ai_model_usage_log dropped behind the migration history's back."""

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.gunicorn_server import free_port

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
pytestmark = pytest.mark.slow


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
def scratch_url():
    base = os.environ["DATABASE_URL"]
    name = f"aicost_guard_{secrets.token_hex(4)}"
    with psycopg.connect(_with_database(base, "postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(base, name)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=_env(url),
            check=True,
            timeout=180,
        )
        yield url
    finally:
        with psycopg.connect(_with_database(base, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(url: str, **extra) -> dict:
    return {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "GUNICORN_WORKERS": "1", **extra}


def _break(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ai_model_usage_log")


def _repair(url: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "schema_repair", "--apply"], cwd=ROOT, env=_env(url), check=True, timeout=120
    )


def _serves(process: subprocess.Popen, port: int, path: str = "/healthz", seconds: float = 30) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.3)
    return None


def _gunicorn(url: str, port: int, **extra) -> subprocess.Popen:
    return subprocess.Popen(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "aicost.wsgi"],
        cwd=ROOT,
        env=_env(url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_gunicorn_and_runserver_refuse_a_broken_schema_and_serve_a_repaired_one(scratch_url):
    _break(scratch_url)

    port = free_port()
    refused = _gunicorn(scratch_url, port)
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 3, output
    assert "refusing to start" in output
    assert "ai_model_usage_log" in output
    assert "schema_repair --apply" in output

    runserver = subprocess.run(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{free_port()}"],
        cwd=ROOT,
        env=_env(scratch_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert runserver.returncode == 3
    assert "ai_model_usage_log" in runserver.stderr

    _repair(scratch_url)
    port = free_port()
    server = _gunicorn(scratch_url, port)
    try:
        assert _serves(server, port, "/readyz") == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_escape_hatch_starts_anyway_and_readiness_says_unready(scratch_url):
    _break(scratch_url)
    port = free_port()
    server = _gunicorn(scratch_url, port, AICOST_SKIP_SCHEMA_GUARD="1")
    try:
        assert _serves(server, port, "/healthz") == 200
        assert _serves(server, port, "/readyz") == 503
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "WITHOUT checking the database schema" in output
    _repair(scratch_url)
