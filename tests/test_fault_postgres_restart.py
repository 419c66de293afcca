"""Fault test: PostgreSQL restarts while clients ingest through gunicorn.

During the outage every request answers 503 (never 500) and stores nothing of its batch; afterwards
the same gunicorn workers serve again without a restart (persistent connections are health-checked
and replaced)."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.db import connections

from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from tests.throwaway_pg import ThrowawayPostgres
from usage.keys import api_key_create
from usage.models import ApiKeyScope, UsageLog

BATCH = 50


def _post(url: str, key: str, batch_no: int) -> tuple[int, dict]:
    records = [
        {"model_name": "gpt-4o", "prompt_tokens": 100, "completion_tokens": 10, "decision_id": f"b{batch_no}-{i}"}
        for i in range(BATCH)
    ]
    request = urllib.request.Request(  # noqa: S310 -- loopback
        f"{url}/api/v1/usage/",
        data=json.dumps(records).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 -- loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class Ingesting(threading.Thread):
    """Posts batches one after another until stopped; remembers each batch's answer."""

    def __init__(self, url: str, key: str):
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.answers: list[tuple[int, int, dict]] = []  # (batch_no, status, body)
        self.stopping = threading.Event()

    def run(self) -> None:
        batch_no = 0
        while not self.stopping.is_set():
            status, body = _post(self.url, self.key, batch_no)
            self.answers.append((batch_no, status, body))
            batch_no += 1
            time.sleep(0.02)

    def successes(self) -> int:
        return sum(1 for _, status, _ in self.answers if status == 201)


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_postgres_restart_during_ingestion_gives_503s_then_recovers_without_a_restart():
    server = ThrowawayPostgres.from_environment()
    if server is None:
        pytest.skip("needs the throwaway PostgreSQL that bin/test starts (it restarts it)")
    _api_key, raw_key = api_key_create(name="fault", scope=ApiKeyScope.WRITE_USAGE)
    with gunicorn_serving(database_url=shared_test_database_url(), env={"CONN_MAX_AGE": "600"}) as url:
        client = Ingesting(url, raw_key)
        client.start()
        try:
            assert _wait_for(lambda: client.successes() >= 5, 30), client.answers[-3:]
            connections.close_all()
            server.stop(mode="fast")
            down_from = len(client.answers)
            assert _wait_for(lambda: len(client.answers) >= down_from + 5, 30)
            server.start()
            up_from = len(client.answers)
            assert _wait_for(lambda: client.successes() >= 5 + 5 and len(client.answers) > up_from + 5, 60)
        finally:
            client.stopping.set()
            client.join(timeout=30)

    statuses = [status for _, status, _ in client.answers]
    assert set(statuses) <= {201, 503}, statuses
    outage = [body for _, status, body in client.answers if status == 503]
    assert outage, "no request saw the outage"
    assert {body["error"]["code"] for body in outage} == {"database_unavailable"}
    assert statuses[-1] == 201  # Recovered, same gunicorn, no restart.

    stored = {}
    for decision_id in UsageLog.objects.values_list("decision_id", flat=True):
        batch_no = int(decision_id.split("-")[0][1:])
        stored[batch_no] = stored.get(batch_no, 0) + 1
    for batch_no, status, _ in client.answers:
        assert stored.get(batch_no, 0) == (BATCH if status == 201 else 0), (batch_no, status)
