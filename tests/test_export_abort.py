"""A failed export is never a complete-looking file (issue 19, point 6), against a real gunicorn with
a real HTTP client: the export's own PostgreSQL backend is terminated (pg_terminate_backend) while it
streams a large CSV, the next fetch from its server-side cursor fails inside the response iterator,
and gunicorn closes the connection without the terminating zero-length chunk, so the client sees an
incomplete transfer (http.client.IncompleteRead). The same export left alone ends cleanly."""

import http.client
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.utils import timezone

from bench.storage import _seed_sql
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.keys import api_key_create
from usage.models import ApiKeyScope
from usage.partitions import LOG_TABLE

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ROWS = 200_000  # ~40 MB of CSV: far more than the socket buffers hold, so the worker is still fetching.
EXPORT = "/api/v1/usage/export.csv?time_range=all"


def _seed(rows: int) -> None:
    start = timezone.now() - timedelta(hours=2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) FROM ai_model_price_version")
        price_version = cursor.fetchone()[0]
        seed = {"start": start.isoformat(), "step": 3600 / rows, "rows": rows, "price_version": price_version}
        cursor.execute(_seed_sql(LOG_TABLE), seed)


def _open_export(url: str, raw_key: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    client = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    client.request("GET", EXPORT, headers={"Authorization": f"Api-Key {raw_key}"})
    response = client.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Length") is None
    return client, response


def _export_backends() -> list[int]:
    """The backends holding the export's server-side cursor (Django names them _django_curs_...)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE %s",
            ["%_django_curs_%"],
        )
        return [pid for (pid,) in cursor.fetchall()]


def test_an_export_cut_by_a_database_failure_is_an_incomplete_transfer():
    _seed(ROWS)
    _key, raw_key = api_key_create(name="export-abort", scope=ApiKeyScope.READ)
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1) as url:
        # Left alone, the same export ends with the terminating chunk: every row, then a clean end.
        client, response = _open_export(url, raw_key)
        body = response.read()
        client.close()
        assert body.count(b"\n") == ROWS + 1

        client, response = _open_export(url, raw_key)
        first = response.read(64 * 1024)  # The worker is streaming; it blocks once the buffers are full.
        assert first.startswith(b"id,timestamp,")
        deadline = time.monotonic() + 10
        while not (backends := _export_backends()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backends, "no backend holds the export's cursor"
        with connection.cursor() as cursor:
            for pid in backends:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        client.close()
        received = len(first) + len(cut.value.partial)
        assert received < len(body)  # Not a complete-looking file: the client knows it is cut.

        # The worker goes on serving: the next export is complete again.
        client, response = _open_export(url, raw_key)
        assert response.read().count(b"\n") == ROWS + 1
        client.close()
