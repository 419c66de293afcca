"""Slow clients and request limits (issue 19, point 2), against a real gunicorn (gthread workers).

Bounded: 50 slow connections held for a few seconds (25 trickling their headers, 25 sending a body at
1 KB/s). While they are held, a stats request and an ingest batch are answered normally, and an
oversize body gets a 413 JSON. bench/slow_clients.py measures throughput and latency under 200."""

import contextlib
import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import RequestDataTooBig
from rest_framework.test import APIRequestFactory

from core.middleware import RequestBodyMiddleware
from ingest.apis import UsageIngestApi
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageLog

SLOW_HEADERS = 25
SLOW_BODIES = 25
BODY_LIMIT = 64 * 1024


def _records(count: int, prefix: str) -> bytes:
    return json.dumps(
        {
            "records": [
                {"model_name": "gpt-4o", "prompt_tokens": 10, "completion_tokens": 5, "decision_id": f"{prefix}-{n}"}
                for n in range(count)
            ]
        }
    ).encode()


class SlowClients:
    """Connections that send a little every `interval` seconds until stopped."""

    def __init__(self, host: str, port: int, raw_key: str):
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()
        self.host, self.port, self.raw_key = host, port, raw_key
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def open(self, headers: int, bodies: int) -> None:
        for _n in range(headers):
            sock = socket.create_connection((self.host, self.port), timeout=10)
            sock.sendall(b"GET /api/v1/ai-platforms/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.sockets.append(sock)
        for _n in range(bodies):
            sock = socket.create_connection((self.host, self.port), timeout=10)
            head = (
                "POST /api/v1/usage/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Api-Key {self.raw_key}\r\nContent-Length: {BODY_LIMIT - 1024}\r\n\r\n"
            )
            sock.sendall(head.encode() + b'{"records": [')
            self.sockets.append(sock)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(1.0):
            for index, sock in enumerate(self.sockets):
                with contextlib.suppress(OSError):  # A header line, or 1 KB of body, per second.
                    sock.sendall(b"X-Slow: 1\r\n" if index < SLOW_HEADERS else b" " * 1024)

    def all_open(self) -> bool:
        """No connection was answered or closed by the server: each is still being read."""
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK) is not None:
                    return False  # Data (an answer) or b"" (closed).
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        return True

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_requests_are_served_while_slow_clients_hold_connections():
    _key, raw_key = api_key_create(name="slow", scope=ApiKeyScope.READ_WRITE)
    auth = {"Authorization": f"Api-Key {raw_key}"}
    env = {"AICOST_MAX_BODY_BYTES": str(BODY_LIMIT)}  # gunicorn.conf.py's threads and pool.
    with gunicorn_serving(database_url=shared_test_database_url(), workers=1, env=env) as url:
        parts = urlsplit(url)
        slow = SlowClients(parts.hostname, parts.port, raw_key)
        try:
            slow.open(SLOW_HEADERS, SLOW_BODIES)
            time.sleep(2)  # Every slow connection is taken by a thread and trickling.
            client = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            started = time.monotonic()
            client.request("GET", "/api/v1/ai-platforms/stats?time_range=all", headers=auth)
            stats = client.getresponse()
            assert stats.status == 200, stats.read()
            assert json.loads(stats.read())["success"] is True
            client.request(
                "POST",
                "/api/v1/usage/",
                body=_records(20, "fast"),
                headers={**auth, "Content-Type": "application/json"},
            )
            batch = client.getresponse()
            assert batch.status == 201, batch.read()
            batch.read()
            assert time.monotonic() - started < 5
            assert UsageLog.objects.filter(decision_id__startswith="fast-").count() == 20

            # Oversize: a 413 JSON, decided from Content-Length before the body is read.
            client.request(
                "POST",
                "/api/v1/usage/",
                body=b" " * (BODY_LIMIT + 1),
                headers={**auth, "Content-Type": "application/json"},
            )
            too_large = client.getresponse()
            assert too_large.status == 413
            assert too_large.getheader("Content-Type") == "application/json"
            assert json.loads(too_large.read())["error"]["code"] == "request_too_large"
            client.close()
            assert slow.all_open()  # They were held all along, not refused.
        finally:
            slow.close()
    assert not UsageLog.objects.exclude(decision_id__startswith="fast-").exists()  # Nothing slow was stored.


def test_the_exception_handler_answers_413_json_for_a_body_read_in_the_view(settings, db):
    """Past the middleware (e.g. a view called directly), DRF's request.data raises RequestDataTooBig:
    the API's one exception handler makes it a 413 in the error envelope, not Django's 400."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    _key, raw_key = api_key_create(name="big", scope=ApiKeyScope.WRITE_USAGE)
    request = APIRequestFactory().post(
        "/api/v1/usage/",
        data=_records(5, "big"),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {raw_key}",
    )
    response = UsageIngestApi.as_view()(request)
    assert response.status_code == 413
    assert response.data["error"]["code"] == "request_too_large"
    with pytest.raises(RequestDataTooBig):
        request.body  # noqa: B018 -- the limit is what the view hit.
    middleware = RequestBodyMiddleware(lambda request: pytest.fail("the view must not run"))
    refused = middleware(
        APIRequestFactory().post("/api/v1/usage/", data=_records(5, "big"), content_type="application/json")
    )
    assert refused.status_code == 413
    assert json.loads(refused.content)["error"]["code"] == "request_too_large"
