"""Issue 16 point 3: each call's cost in the reporting currency at the rate in force at its
timestamp (half-open spans), unconverted calls when none is, and usage_convert converting them later,
exactly, in the log and the rollups; on PostgreSQL and on SQLite (tests/fx_scenario.py)."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingest.services import usage_record_batch
from pricing.models import ExchangeRate
from tests.fx_scenario import CNY_CALL, model_priced, run
from tests.sqlite_process import sqlite_python
from usage.models import UsageLog
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db

SQLITE_SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from tests.fx_scenario import run
print(run())
"""


def test_calls_are_converted_at_the_rate_in_force_at_their_moment_and_later_by_usage_convert():
    assert run() == "fx scenario ok"


@pytest.mark.slow
def test_the_same_scenario_on_sqlite(tmp_path):
    result = sqlite_python(tmp_path / "fx.sqlite3", "-c", SQLITE_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fx scenario ok" in result.stdout


def test_the_dry_run_reports_per_currency_and_the_calls_still_without_a_rate():
    model_priced("cny-chat", "CNY", "2", "8", timezone.now())
    now = timezone.now()
    usage_record_batch(
        records=[
            UsageRecordInput(model_name="cny-chat", timestamp=now - timedelta(days=3), **CNY_CALL),
            UsageRecordInput(model_name="cny-chat", timestamp=now - timedelta(days=1), **CNY_CALL),
        ]
    )
    assert UsageLog.objects.filter(unconverted=True).count() == 2
    ExchangeRate.objects.create(
        base_currency="CNY",
        quote_currency="USD",
        rate=Decimal("0.14"),
        effective_from=now - timedelta(days=2),
        source="test",
    )
    out = StringIO()
    call_command("usage_convert", "--since", (now - timedelta(days=7)).isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert "CNY: 1 calls would be converted, 6.00000000 = 0.84000000 USD" in lines
    assert "CNY: 1 calls still have no rate into USD in force" in lines
    assert lines[-1] == "Dry run: nothing was changed. Run again with --apply to convert."
    assert UsageLog.objects.filter(unconverted=True).count() == 2


def test_a_bad_window_is_a_clear_error():
    with pytest.raises(CommandError, match="--until must be after --since"):
        call_command("usage_convert", "--since", "2026-11-02", "--until", "2026-11-01", stdout=StringIO())
    with pytest.raises(CommandError, match="--since must be a date"):
        call_command("usage_convert", "--since", "yesterday", stdout=StringIO())
