"""usage_reprice (issue 15, point 7) and back-dated versions (point 8, last bullet): the dry run, the
exact apply (log, history, rollups, counters, alerts), resuming an interrupted run, unpriced calls
priced once a price exists, back-dating only through repricing, and currencies never added."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from alerts.models import AlertType, BudgetAlert
from core.timeutils import month_start
from ingest.services import usage_record_batch, usage_reprice_evaluated
from pricing.models import ModelPriceVersion, ModelPricing, PatternKind
from pricing.services import (
    model_name_patterns_set,
    model_pricing_create,
    model_pricing_set_prices,
    price_version_backdate,
)
from tests.gunicorn_server import shared_test_database_url
from tests.sqlite_process import ROOT, sqlite_python
from usage import services
from usage.consistency import usage_consistency_read, usage_rows_outside_version_span
from usage.models import (
    CostSource,
    RepriceStatus,
    UsageCounter,
    UsageLog,
    UsageRepriceChange,
    UsageRepriceRun,
)
from usage.rollups import GRAINS, rollup_columns, rollups_compact, rollups_rebuild
from usage.services import RepriceInterrupted, RepriceInvalid, UsageRecordInput, usage_reprice

pytestmark = pytest.mark.django_db
STATS = "/api/v1/ai-platforms/stats"
TREND = "/api/v1/ai-platforms/cost-trend-daily"
MILLION = Decimal(1_000_000)


def _model(name: str, *, days: int = 60, currency: str = "USD", input_price="1", output_price="2") -> ModelPricing:
    """A model priced since `days` ago (test data: set up in the past directly)."""
    return model_pricing_create(
        model_name=name,
        provider="Acme",
        display_name=name,
        model_type="chat",
        currency=currency,
        input_price_per_million=Decimal(input_price),
        output_price_per_million=Decimal(output_price),
        effective_from=timezone.now() - timedelta(days=days),
        allow_past=True,
    )


def _record(name: str, moments, **fields) -> list[UsageLog]:
    return usage_record_batch(
        records=[
            UsageRecordInput(
                model_name=name, prompt_tokens=1000 + n, completion_tokens=100 + n, timestamp=moment, **fields
            )
            for n, moment in enumerate(moments)
        ]
    )


def _moments(now) -> list:
    """Two calls days ago and three this month (minutes ago)."""
    return [now - timedelta(days=3), now - timedelta(days=2, hours=5)] + [now - timedelta(minutes=m) for m in (9, 7, 5)]


def _cost(log: UsageLog, input_price: str, output_price: str) -> Decimal:
    return (log.prompt_tokens * Decimal(input_price) + log.completion_tokens * Decimal(output_price)) / MILLION


def _correct_in_place(pricing: ModelPricing, **prices) -> None:
    """A version's prices corrected where they are stored (a wrong price map fixed): stored costs keep
    the wrong figure until repriced."""
    ModelPriceVersion.objects.filter(pricing=pricing).update(**prices)


def _rollups() -> dict:
    """Every rollup table summed per key over both kinds of row, keys whose sums are all zero left out."""
    state = {}
    for grain in GRAINS:
        columns = rollup_columns(grain)
        keys = [grain.key_column, "model_name"] if grain.per_model else [grain.key_column]
        sums = ", ".join(f"sum({c})" for c in columns)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(keys)}, {sums} FROM {grain.table} GROUP BY {', '.join(keys)}")  # noqa: S608
            for row in cursor.fetchall():
                values = row[len(keys) :]
                if any(values):
                    state[(grain.table, *row[: len(keys)])] = tuple(values)
    return state


def _log_state(name: str | None = None) -> list[tuple]:
    logs = UsageLog.objects.order_by("timestamp", "id")
    if name is not None:
        logs = logs.filter(model_name=name)
    return list(logs.values_list("id", "model_name", "cost", "cost_source", "price_version_id"))


def _counters() -> list[tuple]:
    return list(
        UsageCounter.objects.order_by("model_name").values_list(
            "model_name", "total_calls", "total_cost", "current_month", "current_month_cost"
        )
    )


def _command(*args) -> str:
    out = StringIO()
    call_command("usage_reprice", *args, stdout=out)
    return out.getvalue()


def _agrees_with_a_rebuild(client) -> None:
    """The rollups, stats and trend as repricing left them equal what a rebuild from the log gives."""

    def read() -> tuple:
        stats = client.get(STATS, {"time_range": "all"}).json()["data"]
        trend = client.get(TREND, {"days": 30}).json()["data"]
        for moments in (stats, trend):
            moments.pop("start", None), moments.pop("end", None)  # The moment of asking.
        return stats, trend

    before = (_rollups(), read())
    rollups_rebuild()
    assert (_rollups(), read()) == before
    reading = usage_consistency_read(full=True)
    assert reading.consistent, (reading.disagreements, reading.counter_drift)


# --- Dry run ----------------------------------------------------------------------------------------


def test_the_dry_run_prints_per_model_and_day_the_old_and_new_totals_and_changes_nothing():
    now = timezone.now()
    pricing = _model("acme-chat")
    logs = _record("acme-chat", _moments(now))
    _correct_in_place(pricing, input_price_per_million=Decimal("3"))
    state = (_log_state(), _counters(), _rollups())

    out = _command("--model", "acme-chat", "--since", (now - timedelta(days=10)).isoformat(), "--actor", "ana")

    assert (_log_state(), _counters(), _rollups()) == state
    assert not UsageRepriceChange.objects.exists()
    zone = timezone.get_current_timezone()
    by_day: dict = {}
    for log in logs:
        by_day.setdefault(log.timestamp.astimezone(zone).date(), []).append(log)
    for day, day_logs in by_day.items():
        old = sum(_cost(log, "1", "2") for log in day_logs)
        new = sum(_cost(log, "3", "2") for log in day_logs)
        line = f"acme-chat  {day}  {len(day_logs)} calls, {len(day_logs)} changed  USD {old:.8f} -> {new:.8f}"
        assert line in out, out
    assert "Dry run: nothing changed" in out
    run = UsageRepriceRun.objects.get()
    assert (run.status, run.actor, run.model_name, run.calls_seen, run.calls_changed) == (
        RepriceStatus.DRY_RUN,
        "ana",
        "acme-chat",
        5,
        5,
    )
    assert Decimal(run.delta["USD"]) == sum(_cost(log, "3", "2") - _cost(log, "1", "2") for log in logs)
    assert run.finished_at is not None


# --- Apply -------------------------------------------------------------------------------------------


def test_apply_changes_the_log_history_rollups_counters_and_alerts_by_exactly_the_difference(staff_client):
    now = timezone.now()
    pricing = _model("acme-chat")
    logs = _record("acme-chat", _moments(now))
    _record("gpt-4o", _moments(now))  # Another model's calls: untouched.
    other = (_log_state("gpt-4o"), [c for c in _counters() if c[0] == "gpt-4o"])
    this_month = [log for log in logs if month_start(log.timestamp) == month_start(now)]
    new_month = sum(_cost(log, "3", "2") for log in this_month)
    ModelPricing.objects.filter(pk=pricing.pk).update(monthly_budget=new_month * Decimal("1.5"))
    _correct_in_place(pricing, input_price_per_million=Decimal("3"))
    version = ModelPriceVersion.objects.get(pricing=pricing)
    rollups_compact()

    outcome = usage_reprice_evaluated(
        model_name="acme-chat", since=now - timedelta(days=10), apply=True, actor="ana", chunk_size=2
    )

    run = outcome.run
    assert (run.status, run.calls_seen, run.calls_changed, run.transactions) == (RepriceStatus.FINISHED, 5, 5, 3)
    assert run.version_ids == [version.pk]
    assert Decimal(run.delta["USD"]) == sum(_cost(log, "3", "2") - _cost(log, "1", "2") for log in logs)
    stored = {log.pk: log for log in UsageLog.objects.filter(model_name="acme-chat")}
    for log in logs:
        assert stored[log.pk].cost == _cost(log, "3", "2")  # Exact: PostgreSQL keeps every digit.
        assert (stored[log.pk].cost_source, stored[log.pk].price_version_id) == (CostSource.COMPUTED, version.pk)
    changes = {change.log_id: change for change in UsageRepriceChange.objects.filter(run=run)}
    assert set(changes) == {log.pk for log in logs}
    for log in logs:
        change = changes[log.pk]
        assert (change.old_cost, change.old_cost_source, change.old_version_id) == (
            _cost(log, "1", "2"),
            CostSource.COMPUTED,
            version.pk,
        )
        assert (change.new_cost, change.new_version_id, change.timestamp) == (
            _cost(log, "3", "2"),
            version.pk,
            log.timestamp,
        )
    counter = UsageCounter.objects.get(model_name="acme-chat")
    assert counter.total_calls == 5
    assert counter.total_cost == sum(_cost(log, "3", "2") for log in logs)
    assert counter.current_month_cost == new_month
    (alert,) = BudgetAlert.objects.filter(model_name="acme-chat", alert_type=AlertType.MODEL_BUDGET)
    assert alert.threshold_percent == 50
    assert (_log_state("gpt-4o"), [c for c in _counters() if c[0] == "gpt-4o"]) == other
    _agrees_with_a_rebuild(staff_client)

    again = usage_reprice(model_name="acme-chat", since=now - timedelta(days=10), apply=True, actor="ana")
    assert (again.run.calls_seen, again.run.calls_changed, again.run.delta) == (5, 0, {})


def test_a_provider_reported_cost_is_never_repriced():
    now = timezone.now()
    pricing = _model("acme-chat")
    (log,) = _record("acme-chat", [now - timedelta(days=1)], cost=Decimal("0.5"))
    _correct_in_place(pricing, input_price_per_million=Decimal("3"))
    outcome = usage_reprice(model_name="acme-chat", since=now - timedelta(days=2), apply=True, actor="t")
    assert outcome.run.calls_seen == 0
    log.refresh_from_db()
    assert (log.cost, log.cost_source) == (Decimal("0.5"), CostSource.PROVIDER)


# --- Resuming ----------------------------------------------------------------------------------------


def _repriced_state(name: str) -> tuple:
    costs = list(UsageLog.objects.filter(model_name=name).order_by("timestamp", "id").values_list("cost", flat=True))
    counter = UsageCounter.objects.filter(model_name=name).values_list(
        "total_calls", "total_cost", "current_month_cost"
    )
    rollups = sorted((key[0], key[1:-1], values) for key, values in _rollups().items() if key[-1] == name)
    runs = UsageRepriceRun.objects.filter(model_name=name)
    history = UsageRepriceChange.objects.filter(run__in=runs).count()
    return costs, list(counter), rollups, history, [(r.status, r.calls_seen, r.calls_changed, r.delta) for r in runs]


def test_an_interrupted_run_continues_from_its_cursor_and_ends_as_an_uninterrupted_one(staff_client):
    now = timezone.now()
    since, until = (now - timedelta(days=10)).isoformat(), now.isoformat()
    for name in ("acme-a", "acme-b"):
        pricing = _model(name)
        _record(name, _moments(now))
        _correct_in_place(pricing, input_price_per_million=Decimal("3"), output_price_per_million=Decimal("0.5"))

    with pytest.raises(RepriceInterrupted):
        usage_reprice_evaluated(
            model_name="acme-a",
            since=now - timedelta(days=10),
            until=now,
            apply=True,
            actor="t",
            chunk_size=2,
            stop_after=1,
        )
    interrupted = UsageRepriceRun.objects.get(model_name="acme-a")
    assert (interrupted.status, interrupted.calls_changed, interrupted.transactions) == (RepriceStatus.RUNNING, 2, 1)
    assert interrupted.cursor_id is not None
    assert UsageRepriceChange.objects.filter(run=interrupted).count() == 2

    out = _command("--model", "acme-a", "--since", since, "--until", until, "--apply", "--chunk-size", "2")
    assert f"Continuing run {interrupted.pk}" in out
    _command("--model", "acme-b", "--since", since, "--until", until, "--apply", "--chunk-size", "2")

    a, b = _repriced_state("acme-a"), _repriced_state("acme-b")
    assert a == b
    assert a[4] == [(RepriceStatus.FINISHED, 5, 5, a[4][0][3])]
    _agrees_with_a_rebuild(staff_client)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_run_killed_between_transactions_continues_on_rerun_and_ends_as_an_uninterrupted_one():
    """kill -9 of a real `usage_reprice --apply` process mid-run: the rerun of the same command picks
    up its cursor; the end state equals that of a model repriced in one go."""
    now = timezone.now()
    since, until = (now - timedelta(days=10)).isoformat(), now.isoformat()
    moments = [now - timedelta(days=3, seconds=n) for n in range(1500)]
    for name in ("acme-a", "acme-b"):
        pricing = _model(name)
        for start in range(0, len(moments), 500):
            _record(name, moments[start : start + 500])
        _correct_in_place(pricing, input_price_per_million=Decimal("3"), output_price_per_million=Decimal("0.5"))
    args = ["--model", "acme-a", "--since", since, "--until", until, "--apply", "--chunk-size", "10"]
    env = {**os.environ, "DATABASE_URL": shared_test_database_url()}
    child = subprocess.Popen(
        [sys.executable, "manage.py", "usage_reprice", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if UsageRepriceRun.objects.filter(model_name="acme-a", transactions__gte=5).exists():
                break
            time.sleep(0.01)
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    killed = UsageRepriceRun.objects.get(model_name="acme-a")
    assert killed.status == RepriceStatus.RUNNING
    assert 0 < killed.calls_seen < 1500
    assert UsageRepriceChange.objects.filter(run=killed).count() == killed.calls_changed

    assert f"Continuing run {killed.pk}" in _command(*args)
    _command("--model", "acme-b", "--since", since, "--until", until, "--apply", "--chunk-size", "10")

    a, b = _repriced_state("acme-a"), _repriced_state("acme-b")
    assert a == b
    assert a[4] == [(RepriceStatus.FINISHED, 1500, 1500, a[4][0][3])]
    reading = usage_consistency_read(full=True)
    assert reading.consistent, (reading.disagreements, reading.counter_drift)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_run_beside_concurrent_ingestion_of_the_same_model_loses_no_update_and_deadlocks_nothing():
    """Batches of the model (and of the unpriced name the run moves) stored while the run applies
    its transactions: every figure still equals the log afterwards."""
    now = timezone.now()
    pricing = _model("acme-chat")
    moments = [now - timedelta(days=2, seconds=n) for n in range(600)]
    _record("acme-chat", moments)
    _record("acme-chat-2026-01-01", moments[:100])  # Unpriced until the pattern below.
    model_name_patterns_set(pricing=pricing, patterns=[(PatternKind.PREFIX, "acme-chat-")])
    _correct_in_place(pricing, input_price_per_million=Decimal("3"))
    errors: list[BaseException] = []
    done = threading.Event()

    def ingest() -> None:
        try:
            while not done.is_set():
                _record("acme-chat", [now - timedelta(days=1)] * 20)
                _record("acme-chat-2026-01-01", [now - timedelta(minutes=1)] * 5)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        run = usage_reprice_evaluated(
            model_name="acme-chat", since=now - timedelta(days=10), apply=True, actor="t", chunk_size=25
        ).run
    finally:
        done.set()
        writer.join(60)
    assert not errors
    assert run.calls_changed == 700
    assert not UsageLog.objects.exclude(model_name="acme-chat").exists()
    stored = list(UsageLog.objects.all())
    assert len(stored) > 700  # The writer stored batches meanwhile.
    assert all(log.cost == _cost(log, "3", "2") for log in stored)
    counter = UsageCounter.objects.get(model_name="acme-chat")
    assert (counter.total_calls, counter.total_cost) == (len(stored), sum(log.cost for log in stored))
    reading = usage_consistency_read(full=True)
    assert reading.consistent, (reading.disagreements, reading.counter_drift)


# --- Unpriced calls, back-dating ------------------------------------------------------------------------


def test_unpriced_calls_are_priced_once_a_price_is_added_through_a_backdated_reprice(staff_client):
    now = timezone.now()
    moments = _moments(now)
    _record("acme-new", moments[:3])
    _record("acme-new-2026-01-01", moments[3:])  # A dated snapshot's name, also unpriced.
    assert set(UsageLog.objects.values_list("cost_source", flat=True)) == {CostSource.UNPRICED}
    pricing = model_pricing_create(
        model_name="acme-new",
        provider="Acme",
        display_name="Acme new",
        model_type="chat",
        currency="USD",
        input_price_per_million=Decimal("2"),
        output_price_per_million=Decimal("8"),
    )
    model_name_patterns_set(pricing=pricing, patterns=[(PatternKind.REGEX, r"acme-new-\d{4}-\d{2}-\d{2}")])
    version = ModelPriceVersion.objects.get(pricing=pricing)

    # Its price starts now: the stored calls stay unpriced (the snapshot's calls are counted under it).
    plain = usage_reprice(model_name="acme-new", since=now - timedelta(days=10), actor="t")
    assert plain.run.calls_seen == 5
    assert all(day.new == {"USD": 0} for day in plain.days)

    outcome = usage_reprice_evaluated(
        model_name="acme-new", since=now - timedelta(days=10), apply=True, backdate=True, actor="t"
    )
    version.refresh_from_db()
    assert version.effective_from == now - timedelta(days=10)
    assert outcome.run.backdate
    assert outcome.run.calls_changed == 5
    logs = list(UsageLog.objects.order_by("timestamp", "id"))
    assert [(log.model_name, log.cost_source, log.price_version_id) for log in logs] == [
        ("acme-new", CostSource.COMPUTED, version.pk)
    ] * 5
    assert [log.sent_model_name for log in logs] == ["acme-new"] * 3 + ["acme-new-2026-01-01"] * 2
    for log in logs:
        assert log.cost == _cost(log, "2", "8")
    old_names = set(UsageRepriceChange.objects.values_list("old_model_name", "old_cost_source", "old_cost"))
    assert old_names == {("acme-new", CostSource.UNPRICED, None), ("acme-new-2026-01-01", CostSource.UNPRICED, None)}
    counters = {row[0]: row for row in _counters()}
    assert counters["acme-new"][1:3] == (5, sum(log.cost for log in logs))
    assert counters["acme-new-2026-01-01"][1:3] == (0, 0)
    assert usage_rows_outside_version_span() == []
    _agrees_with_a_rebuild(staff_client)


def test_a_backdated_version_is_refused_outside_repricing():
    pricing = _model("acme-chat", days=30)
    past = timezone.now() - timedelta(days=5)
    with pytest.raises(ValidationError, match="cannot start in the past"):
        model_pricing_set_prices(
            pricing=pricing,
            input_price_per_million=Decimal("3"),
            output_price_per_million=Decimal("2"),
            effective_from=past,
        )
    with pytest.raises(ValidationError, match="cannot start in the past"):
        price_version_backdate(pricing=pricing, effective_from=past)
    with pytest.raises(CommandError, match="leave --until out"):
        _command(
            "--model", "acme-chat", "--since", past.isoformat(), "--until", timezone.now().isoformat(), "--backdate"
        )
    with pytest.raises(CommandError, match="not a priced model"):
        _command("--model", "nobody", "--since", past.isoformat())
    with pytest.raises(CommandError, match="must be a date"):
        _command("--model", "acme-chat", "--since", "last tuesday")
    with pytest.raises(RepriceInvalid, match="already starts"):
        usage_reprice(model_name="acme-chat", since=timezone.now(), backdate=True, actor="t")


def test_backdating_through_reprice_moves_every_stored_call_onto_the_version_of_its_moment(staff_client):
    now = timezone.now()
    pricing = _model("acme-chat", days=60)
    v1 = ModelPriceVersion.objects.get(pricing=pricing)
    v2 = model_pricing_set_prices(
        pricing=pricing,
        input_price_per_million=Decimal("1.5"),
        output_price_per_million=Decimal("2"),
        effective_from=now - timedelta(days=20),
        allow_past=True,  # Test data: history as it was.
    )
    early, middle, late = _record(
        "acme-chat", [now - timedelta(days=30), now - timedelta(days=10), now - timedelta(days=1)]
    )
    (reported,) = _record("acme-chat", [now - timedelta(days=9)], cost=Decimal("0.25"))
    v3 = model_pricing_set_prices(
        pricing=ModelPricing.objects.get(pk=pricing.pk),
        input_price_per_million=Decimal("4"),
        output_price_per_million=Decimal("6"),
    )
    dry = usage_reprice(model_name="acme-chat", since=now - timedelta(days=25), backdate=True, actor="t")
    assert dry.run.status == RepriceStatus.DRY_RUN
    assert dry.run.calls_changed == 3
    assert ModelPriceVersion.objects.filter(pk=v2.pk).exists()  # The dry run changed nothing.
    v3.refresh_from_db()
    assert v3.effective_from > now - timedelta(minutes=1)

    usage_reprice_evaluated(
        model_name="acme-chat", since=now - timedelta(days=25), apply=True, backdate=True, actor="t"
    )

    assert not ModelPriceVersion.objects.filter(pk=v2.pk).exists()  # Wholly inside the span: replaced.
    v1.refresh_from_db()
    v3.refresh_from_db()
    assert (v1.effective_to, v3.effective_from) == (now - timedelta(days=25), now - timedelta(days=25))
    stored = {log.pk: log for log in UsageLog.objects.all()}
    assert (stored[early.pk].cost, stored[early.pk].price_version_id) == (_cost(early, "1", "2"), v1.pk)
    for log in (middle, late):
        assert (stored[log.pk].cost, stored[log.pk].price_version_id) == (_cost(log, "4", "6"), v3.pk)
    assert (stored[reported.pk].cost, stored[reported.pk].cost_source) == (Decimal("0.25"), CostSource.PROVIDER)
    assert stored[reported.pk].price_version_id == v3.pk
    history = {c.log_id: (c.old_version_id, c.new_version_id) for c in UsageRepriceChange.objects.all()}
    assert history == {middle.pk: (v2.pk, v3.pk), late.pk: (v2.pk, v3.pk), reported.pk: (v2.pk, v3.pk)}
    assert usage_rows_outside_version_span() == []
    _agrees_with_a_rebuild(staff_client)


def test_two_currencies_in_one_run_are_never_added():
    now = timezone.now()
    pricing = _model("acme-chat", days=30, currency="USD")
    logs = _record("acme-chat", [now - timedelta(days=2), now - timedelta(days=2, minutes=1)])
    model_pricing_set_prices(
        pricing=pricing,
        input_price_per_million=Decimal("1"),
        output_price_per_million=Decimal("1"),
        currency="EUR",
    )
    out = _command("--model", "acme-chat", "--since", (now - timedelta(days=3)).isoformat(), "--backdate")
    old = sum(_cost(log, "1", "2") for log in logs)
    new = sum(_cost(log, "1", "1") for log in logs)
    assert f"EUR 0.00000000 -> {new:.8f}; USD {old:.8f} -> 0.00000000" in out, out
    run = UsageRepriceRun.objects.get()
    assert {currency: Decimal(amount) for currency, amount in run.delta.items()} == {"EUR": new, "USD": -old}


def test_the_runs_and_changes_are_read_only_in_admin(staff_client):
    now = timezone.now()
    pricing = _model("acme-chat")
    _record("acme-chat", [now - timedelta(days=1)])
    _correct_in_place(pricing, input_price_per_million=Decimal("3"))
    run = usage_reprice(model_name="acme-chat", since=now - timedelta(days=2), apply=True, actor="ana").run
    change = UsageRepriceChange.objects.get()
    for url in ("/admin/usage/usagerepricerun/", "/admin/usage/usagerepricechange/"):
        response = staff_client.get(url)
        assert response.status_code == 200
        assert "ana" in response.content.decode() or str(change.log_id) in response.content.decode()
    assert staff_client.get(f"/admin/usage/usagerepricerun/{run.pk}/change/").status_code == 200
    assert staff_client.get("/admin/usage/usagerepricerun/add/").status_code == 403
    assert staff_client.post(f"/admin/usage/usagerepricerun/{run.pk}/delete/").status_code == 403


# --- SQLite, the local default ---------------------------------------------------------------------------

SQLITE_SCRIPT = """
import django
django.setup()
from datetime import timedelta
from decimal import Decimal
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from ingest.services import usage_record_batch, usage_reprice_evaluated
from pricing.models import ModelPriceVersion
from pricing.services import model_pricing_create, model_pricing_set_prices
from usage.consistency import usage_consistency_read, usage_rows_outside_version_span
from usage.models import UsageCounter, UsageLog
from usage.rollups import rollups_rebuild
from usage.services import RepriceInterrupted, UsageRecordInput
from core.money import cost_from_float

now = timezone.now()
pricing = model_pricing_create(model_name="acme", provider="Acme", display_name="acme", model_type="chat",
    currency="USD", input_price_per_million=Decimal("1"), output_price_per_million=Decimal("2"),
    effective_from=now - timedelta(days=30), allow_past=True)
logs = usage_record_batch(records=[UsageRecordInput(model_name="acme", prompt_tokens=1000 + n, completion_tokens=77,
    timestamp=now - timedelta(days=n, minutes=3)) for n in range(5)])
ModelPriceVersion.objects.filter(pricing=pricing).update(input_price_per_million=Decimal("0.0359375"))
try:
    usage_reprice_evaluated(model_name="acme", since=now - timedelta(days=10), until=now, apply=True, actor="t",
                            chunk_size=2, stop_after=1)
    raise AssertionError("the hook stops the run")
except RepriceInterrupted:
    pass
run = usage_reprice_evaluated(model_name="acme", since=now - timedelta(days=10), until=now, apply=True, actor="t",
                              chunk_size=2).run
assert (run.calls_seen, run.calls_changed, run.transactions) == (5, 5, 3), (run.calls_seen, run.calls_changed)
expected = {log.pk: (log.prompt_tokens * Decimal("0.0359375") + 77 * 2) / 1_000_000 for log in logs}
for log in UsageLog.objects.all():
    assert cost_from_float(float(log.cost)) == cost_from_float(float(expected[log.pk])), (log.cost, expected[log.pk])
counter = UsageCounter.objects.get(model_name="acme")
assert cost_from_float(float(counter.total_cost)) == cost_from_float(float(sum(expected.values())))
reading = usage_consistency_read(full=True)
assert reading.consistent, (reading.disagreements, reading.counter_drift)
model_pricing_set_prices(pricing=pricing, input_price_per_million=Decimal("5"), output_price_per_million=Decimal("5"))
usage_reprice_evaluated(model_name="acme", since=now - timedelta(days=2), apply=True, backdate=True, actor="t")
assert usage_rows_outside_version_span() == []
rollups_rebuild()
reading = usage_consistency_read(full=True)
assert reading.consistent, (reading.disagreements, reading.counter_drift)
print("sqlite reprice ok")
"""


@pytest.mark.slow
def test_reprice_resumes_and_backdates_on_sqlite_too(tmp_path):
    result = sqlite_python(tmp_path / "reprice.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite reprice ok" in result.stdout


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_batch_that_read_prices_before_a_backdating_run_holds_the_run_back(monkeypatch):
    """A batch reads its prices, then a back-dating run starts: the batch already holds its lock on
    the log (taken before reading prices), so the run waits for it and then reprices its call too.
    Were the lock taken only at COPY, the run would move the spans meanwhile and the batch would store
    its call against a version whose span no longer contains it."""
    now = timezone.now()
    pricing = _model("acme-chat", days=60)
    model_pricing_set_prices(
        pricing=pricing, input_price_per_million=Decimal("4"), output_price_per_million=Decimal("6")
    )
    book_read, go, errors = threading.Event(), threading.Event(), []
    batch_thread: list[threading.Thread] = []
    read_prices = services.price_book_cached  # What a batch reads its prices with (cached or not).

    def prices_then_pause(**kwargs):
        book = read_prices(**kwargs)
        if threading.current_thread() in batch_thread:
            book_read.set()
            go.wait(10)
        return book

    monkeypatch.setattr(services, "price_book_cached", prices_then_pause)

    def in_thread(work):
        def run() -> None:
            try:
                work()
            except BaseException as error:
                errors.append(error)
                book_read.set()
            finally:
                connection.close()

        return threading.Thread(target=run)

    batch = in_thread(lambda: _record("acme-chat", [now - timedelta(days=5)]))
    batch_thread.append(batch)
    backdate = in_thread(
        lambda: usage_reprice_evaluated(
            model_name="acme-chat", since=now - timedelta(days=10), apply=True, backdate=True, actor="t"
        )
    )
    batch.start()
    assert book_read.wait(10)
    backdate.start()
    backdate.join(0.5)
    assert backdate.is_alive()  # Held back by the batch's lock on the log.
    go.set()
    batch.join(20)
    backdate.join(20)
    assert not errors
    current = ModelPriceVersion.objects.get(pricing=pricing, effective_to__isnull=True)
    (log,) = UsageLog.objects.all()
    assert (log.price_version_id, log.cost) == (current.pk, _cost(log, "4", "6"))
    assert usage_rows_outside_version_span() == []
