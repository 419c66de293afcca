"""Idempotency retention (issue 19, point 5): keys older than AICOST_IDEMPOTENCY_RETENTION_DAYS are
removed by the maintenance commands in small batches, on PostgreSQL and on SQLite; a retry within the
window is still a duplicate, one after it is stored again; the removal never waits for ingestion."""

import threading
import time
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.sqlite_process import sqlite_python
from usage.models import UsageIdempotencyKey, UsageLog
from usage.services import UsageRecordInput, usage_idempotency_keys_expire, usage_ingest


def _record(key: str, decision: str = "d-retention") -> UsageRecordInput:
    return UsageRecordInput(
        model_name="gpt-4o", prompt_tokens=10, completion_tokens=5, decision_id=decision, idempotency_key=key
    )


def _age(keys: list[str], days: float) -> None:
    UsageIdempotencyKey.objects.filter(idempotency_key__in=keys).update(
        created_at=timezone.now() - timedelta(days=days)
    )


def retention_scenario(call_command=call_command) -> None:
    """Shared by the PostgreSQL test and the SQLite process below."""
    old = [f"old-{n}" for n in range(7)]
    fresh = [f"fresh-{n}" for n in range(3)]
    usage_ingest(records=[_record(key) for key in old])
    usage_ingest(records=[_record(key) for key in fresh])
    _age(old, days=8)  # Default window: 7 days.
    _age(fresh[:1], days=6.9)

    dry = StringIO()
    call_command("usage_retention", "--keep-months", "13", stdout=dry)
    assert "would remove 7 idempotency key(s)" in dry.getvalue(), dry.getvalue()
    assert UsageIdempotencyKey.objects.count() == 10

    # Batches of 3: the walk goes on over several batches and stops at the first fresh key.
    expiry = usage_idempotency_keys_expire(now=timezone.now(), batch_size=3)
    assert (expiry.removed, expiry.batches, expiry.finished) == (7, 3, True), expiry
    assert set(UsageIdempotencyKey.objects.values_list("idempotency_key", flat=True)) == set(fresh)

    out = StringIO()
    call_command("usage_partitions", stdout=out)  # The daily command: nothing left to remove.
    assert "removed 0 idempotency key(s)" in out.getvalue(), out.getvalue()

    logged = UsageLog.objects.count()
    again = usage_ingest(records=[_record(fresh[0]), _record(old[0])])
    assert again.duplicates == 1  # Within the window: still recognised, even at 6.9 days.
    assert [row.decision_id for row in again.stored] == ["d-retention"]  # After it: stored again.
    assert UsageLog.objects.count() == logged + 1

    _age(fresh, days=30)
    out = StringIO()
    call_command("usage_retention", "--keep-months", "13", "--apply", stdout=out)
    assert "removed 3 idempotency key(s)" in out.getvalue(), out.getvalue()
    assert list(UsageIdempotencyKey.objects.values_list("idempotency_key", flat=True)) == [old[0]]

    # A time bound of zero stops before the first batch: bounded, and the next run goes on.
    _age([old[0]], days=30)
    stopped = usage_idempotency_keys_expire(now=timezone.now(), max_seconds=-1)
    assert (stopped.removed, stopped.finished) == (0, False)
    assert usage_idempotency_keys_expire(now=timezone.now()).removed == 1


@pytest.mark.django_db
def test_old_keys_are_removed_in_batches_on_postgresql():
    assert connection.vendor == "postgresql"
    retention_scenario()


def test_old_keys_are_removed_on_sqlite(tmp_path):
    script = (
        "import django\ndjango.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from tests.test_idempotency_retention import retention_scenario\n"
        "retention_scenario()\n"
        "print('sqlite retention ok')\n"
    )
    result = sqlite_python(tmp_path / "retention.sqlite3", "-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite retention ok" in result.stdout


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_removal_does_not_wait_for_an_open_ingestion_transaction():
    """A batch holds its transaction open (its new keys claimed, not committed): the removal of old keys
    runs to the end meanwhile, and the batch commits afterwards with its keys intact."""
    usage_ingest(records=[_record(f"old-{n}") for n in range(50)])
    _age([f"old-{n}" for n in range(50)], days=10)
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
    )
    try:
        with other.cursor() as cursor:  # psycopg opens a transaction: the claim stays uncommitted.
            cursor.execute(
                "INSERT INTO ai_usage_idempotency (decision_id, idempotency_key, created_at) "
                "VALUES ('d-open', 'k-open', now() - interval '30 days')"
            )
        done = threading.Event()
        result = {}

        def expire():
            result["expiry"] = usage_idempotency_keys_expire(now=timezone.now(), batch_size=10)
            connection.close()
            done.set()

        thread = threading.Thread(target=expire)
        thread.start()
        assert done.wait(20), "the removal waited for the open ingestion transaction"
        thread.join()
        assert result["expiry"].removed == 50
        other.commit()
    finally:
        other.close()
    assert list(UsageIdempotencyKey.objects.values_list("idempotency_key", flat=True)) == ["k-open"]
    # Committed late with an old created_at: the next daily run removes it, then VACUUMs (autocommit here).
    out = StringIO()
    call_command("usage_partitions", stdout=out)
    assert "removed 1 idempotency key(s)" in out.getvalue(), out.getvalue()
    assert not UsageIdempotencyKey.objects.exists()
    deadline = time.monotonic() + 10  # Statistics are flushed within a second or so.
    vacuums = 0
    while not vacuums and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'ai_usage_idempotency'")
            vacuums = cursor.fetchone()[0]
        time.sleep(0.1)
    assert vacuums >= 1
