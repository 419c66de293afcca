"""A real HTTP server (stdlib http.server, on loopback, in a thread) that answers POST /api/v1/usage/ as
aicost does, with faults injected on demand: scripted statuses, Retry-After, 400s naming records,
stalls. It stores each (decision_id, idempotency_key) once, as aicost does, so a test can tell a
retry that stored twice from one that did not."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeAicost:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # {"time", "headers", "records", "status"}
        self.stored: dict[tuple[str, str], dict] = {}
        self.script: list = []  # Answers to give first, in order: (status, headers, body) or a callable.
        self.judge: Callable[[list[dict]], tuple | None] | None = None  # Per request, before the script.
        self.gate = threading.Event()  # Cleared: every request waits until it is set.
        self.gate.set()
        self._server: ThreadingHTTPServer | None = None

    # Lifecycle.

    def start(self) -> FakeAicost:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAicost:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.gate.set()
        self.stop()

    # What was sent.

    def stored_keys(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.stored)

    def sent_records(self) -> list[dict]:
        with self.lock:
            return [record for request in self.requests for record in request["records"]]

    def wait_stored(self, count: int, seconds: float = 10) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.stored) >= count:
                return True
            time.sleep(0.01)
        return False

    # Answering.

    def _answer(self, handler, status: int, headers: dict, body: dict) -> None:
        content = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(content)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(content)

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        payload = json.loads(handler.rfile.read(length))
        records = payload["records"]
        self.gate.wait()
        request = {"time": time.monotonic(), "headers": dict(handler.headers), "records": records}
        answer = self.judge(records) if self.judge else None
        with self.lock:
            if answer is None and self.script:
                answer = self.script.pop(0)
            if callable(answer):
                answer = answer(records)
            if answer is None:
                answer = self._store(records)
            request["status"] = answer[0]
            self.requests.append(request)
        self._answer(handler, *answer)

    def _store(self, records: list[dict]) -> tuple:
        stored = 0
        for record in records:
            pair = (record.get("decision_id", ""), record["idempotency_key"])
            if pair not in self.stored:
                self.stored[pair] = record
                stored += 1
        data = {"stored": stored, "duplicates": len(records) - stored, "unpriced": 0, "records": []}
        return 201, {}, {"success": True, "data": data}


def invalid(index: int, field: str, message: str) -> tuple:
    """The 400 aicost gives for a batch with record `index` breaking a rule (core/api/exceptions.py)."""
    path = f"records[{index}].{field}"
    error = {
        "code": "invalid",
        "message": f"{path}: {message}",
        "fields": {"records": {str(index): {field: [message]}}},
        "field": path,
    }
    return 400, {}, {"success": False, "error": error}


def unavailable(retry_after: str | None = "1") -> tuple:
    body = {"success": False, "error": {"code": "database_unavailable", "message": "The database is unavailable"}}
    return 503, ({"Retry-After": retry_after} if retry_after is not None else {}), body


class FaultProxy:
    """A real HTTP proxy in front of a live aicost: forwards each POST as sent, except that it plays
    `faults` first, one per request: "lose_answer" (forward, then answer 502 as if the answer was
    lost: the server stored the batch), "unavailable" (answer 503 with Retry-After: 1 without
    forwarding), "reset" (close the connection without an answer)."""

    def __init__(self, upstream: str, faults: list[str]) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = list(faults)
        self.played: list[str] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None

    def _forward(self, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    fault = proxy.faults.pop(0) if proxy.faults else "forward"
                    proxy.played.append(fault)
                if fault == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "unavailable":
                    status, headers, content = 503, [("Retry-After", "1")], b'{"success": false}'
                else:
                    forwarded = {name: self.headers[name] for name in ("Authorization", "Content-Type", "Host")}
                    status, headers, content = proxy._forward(self.path, forwarded, body)
                    if fault == "lose_answer":
                        status, headers, content = 502, [], b'{"success": false}'
                self.send_response(status)
                for name, value in headers:
                    if name.lower() in ("content-type", "retry-after"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
