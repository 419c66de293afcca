"""The incident replayed end to end in Debian's Chromium on the SQLite dev setup (issue 13, point 8): the
real bin/dev on a fresh SQLite file loads the demo; the usage log is dropped while its migration stays
recorded; the cost page shows the banner over the parts that still work; `schema_repair --apply`
recreates the table; the guard reports the lost rows (aicost.W012) and `usage_reconcile --fix` refuses
to pick a side; `usage_reconcile --from-rollups --fix` records them; the page is healthy again with the
totals it showed before the drop. The commands run as a developer types them after bin/dev (env file
only, nothing exported). One screenshot per step goes to artifacts/."""

import json
import re
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from tests.chromium import ARTIFACTS, chromium_context
from tests.dev_server import dev_manage, dev_serving, dev_setup

PAGE = "/admin/ai-cost"
STATS = "/api/v1/ai-platforms/stats?time_range=all"
TREND = "/api/v1/ai-platforms/cost-trend-daily?days=366"
# When the answer was computed: differs from one request to the next, never a total.
STATS_MOMENTS = ("start", "end")
COUNTERS = "SELECT model_name, total_calls, total_cost, current_month_cost FROM ai_usage_counter ORDER BY model_name"


@pytest.fixture
def chromium(monkeypatch, tmp_path):
    with chromium_context(tmp_path / "chromium-profile", monkeypatch) as context:
        yield context


def _log_in(page, url: str, login: tuple[str, str]) -> None:
    """Through the admin's login form, as a person would."""
    page.goto(f"{url}/admin/login/?next={PAGE}")
    page.fill("#id_username", login[0])
    page.fill("#id_password", login[1])
    page.click("input[type=submit]")
    page.wait_for_selector("#ai-cost[data-ready]", timeout=30_000)


def _open_all_time(page, url: str) -> int:
    """The cost page with "All time" chosen, which the trend follows (its longest span, 366 days), each
    request answered and rendered. Returns the page's HTTP status."""
    status = page.goto(f"{url}{PAGE}").status
    page.wait_for_selector("#ai-cost[data-ready]", timeout=30_000)
    with page.expect_response(lambda response: "days=366" in response.url):
        page.select_option('[data-testid="time-range"]', "all")
    page.wait_for_selector("#ai-cost[data-loaded-days='366']")
    if page.get_attribute("#ai-cost", "data-failed") is None:
        page.wait_for_selector("#ai-cost[data-loaded-range=all]")
    return status


def _api(page, path: str) -> tuple[int, dict]:
    """(status, body) of an API call in the browser's session."""
    answer = page.evaluate(
        "path => fetch(path, {credentials: 'same-origin'}).then(async r => [r.status, await r.text()])", path
    )
    return answer[0], json.loads(answer[1], parse_float=Decimal)  # Money exactly, as README says to read it.


def _api_figures(page) -> dict:
    status, stats = _api(page, STATS)
    assert status == 200, stats
    status, trend = _api(page, TREND)
    assert status == 200, trend
    data = {key: value for key, value in stats["data"].items() if key not in STATS_MOMENTS}
    return {"stats": data, "trend": trend["data"]}


def _rows(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "rows => rows.map(row => row.innerText)")


def _stats_shown(page) -> dict:
    cards = {
        name: (
            page.get_attribute(f'[data-testid="card-{name}"]', "data-value"),
            page.inner_text(f'[data-testid="card-{name}"]'),
        )
        for name in ("calls", "success-rate", "cost", "unpriced")
    }
    models = page.eval_on_selector_all(
        '[data-testid="models-table"] tbody tr',
        "rows => rows.map(row => [row.dataset.model, row.querySelector('[data-field=cost]').dataset.value,"
        " row.innerText])",
    )
    return {"cards": cards, "models": models, "range": page.inner_text('[data-testid="range-label"]')}


def _working_parts_shown(page) -> dict:
    """What reads other tables than the log: the trend (rollups), the budgets (model counters), the alerts."""
    return {
        "trend_total": page.get_attribute('[data-testid="trend-summary"]', "data-total-cost"),
        "trend_text": page.inner_text('[data-testid="trend-summary"]'),
        # Each day's height: the stack of its models' bars (one bar per day when the stats, which
        # name the costliest models, are unavailable), to the 8 places the page shows.
        "trend_bars": page.evaluate(
            "Chart.getChart('trend-chart').data.datasets.reduce("
            "(days, set) => days.map((d, i) => d + (set.data[i] || 0)),"
            " Chart.getChart('trend-chart').data.labels.map(() => 0)).map(d => Math.round(d * 1e8) / 1e8)"
        ),
        "budgets": _rows(page, '[data-testid="budgets"] tr[data-budget]'),
        "alerts": _rows(page, '[data-testid="alerts"] li'),
        "alerts_empty": page.is_visible('[data-testid="alerts-empty"]'),
    }


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"e2e-dev-incident-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def _counters(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as db:
        return db.execute(COUNTERS).fetchall()


def _log_rows(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT count(*) FROM ai_model_usage_log").fetchone()[0]


def _drop_the_log(database: Path) -> None:
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE ai_model_usage_log")  # Its migrations stay recorded in django_migrations.


def _manage(setup, *arguments: str):
    result = dev_manage(setup, *arguments)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    return result


def _assert_no_banners(page) -> None:
    assert page.locator('[data-testid="schema-banner"]').count() == 0
    assert page.locator('[data-testid="schema-warnings"]').count() == 0
    assert page.get_attribute("#ai-cost", "data-failed") is None


@pytest.mark.e2e
@pytest.mark.slow
def test_the_incident_on_the_dev_setup_from_demo_to_healthy_with_the_same_totals(chromium, tmp_path):
    setup = dev_setup(tmp_path)
    with dev_serving(setup, name="dev") as server:
        login = server.printed_login()
        assert login is not None, server.output()[-3000:]
        page = chromium.new_page()

        # 1. The demo, as bin/dev loaded it.
        _log_in(page, server.url, login)
        assert _open_all_time(page, server.url) == 200
        _assert_no_banners(page)
        before = _api_figures(page)
        summary = before["stats"]["summary"]
        assert summary["total_calls"] == _log_rows(setup.database) > 10_000
        stats_before = _stats_shown(page)
        assert stats_before["range"] == "All time"
        assert stats_before["cards"]["calls"] == (str(summary["total_calls"]), f"{summary['total_calls']:,}")
        assert Decimal(stats_before["cards"]["cost"][0]) == summary["total_cost"]
        assert stats_before["cards"]["unpriced"][0] == str(summary["unpriced_calls"])
        platforms = before["stats"]["platforms"]
        shown = [(row[0], Decimal(row[1])) for row in stats_before["models"]]
        assert shown == [(p["model_name"], p["cost"]) for p in platforms]
        assert sum(p["calls"] for p in platforms) == summary["total_calls"]
        working_before = _working_parts_shown(page)
        assert Decimal(working_before["trend_total"]) == before["trend"]["summary"]["total_cost"]
        assert working_before["trend_text"].startswith("366 days: total ")
        assert len(working_before["trend_bars"]) == 366
        assert working_before["budgets"], "the demo sets budgets"
        _screenshot(page, "1-demo")

        # 2. The incident: the log is gone, its migration still recorded; the server keeps running.
        _drop_the_log(setup.database)
        assert _open_all_time(page, server.url) == 503  # Probes and monitors still see the breakage.
        banner = page.inner_text('[data-testid="schema-banner"]')
        assert "ai_model_usage_log" in banner
        assert "python manage.py schema_repair --apply" in banner
        assert page.get_attribute("#ai-cost", "data-failed") == "stats"
        reason = "ai_model_usage_log is missing from the database (HTTP 503, schema_unhealthy)."
        for panel in ("stats", "provider", "models"):
            assert page.inner_text(f'[data-testid="{panel}-unavailable"]') == f"Unavailable: {reason}"
        assert page.is_hidden('[data-testid="cards"]')
        assert _api(page, STATS)[0] == 503
        assert page.is_visible('[data-testid="trend-chart"]')
        assert page.is_hidden('[data-testid="trend-unavailable"]')
        assert page.is_hidden('[data-testid="alerts-unavailable"]')
        assert page.locator('[data-testid="budgets-unavailable"]').count() == 0
        assert _working_parts_shown(page) == working_before
        status, trend = _api(page, TREND)
        assert (status, trend["data"]) == (200, before["trend"])
        _screenshot(page, "2-log-dropped")

        # 3. The repair the banner names.
        counters_before_repair = _counters(setup.database)
        repair = _manage(setup, "schema_repair", "--apply")
        assert repair.returncode == 0, repair.stdout + repair.stderr
        assert _log_rows(setup.database) == 0  # There again, empty.

        # 4. The guard reports the lost rows; reconcile refuses to guess which side is the truth.
        assert _open_all_time(page, server.url) == 200
        assert page.locator('[data-testid="schema-banner"]').count() == 0
        finding = page.inner_text('[data-testid="schema-warnings"] li[data-finding="aicost.W012"]')
        now = timezone.now()
        assert f"{now:%Y-%m}" in finding
        assert f"{now - timedelta(days=90):%Y-%m}" in finding
        assert f"the log lacks {summary['total_calls']:,} calls" in finding
        assert "usage_reconcile --from-rollups --fix" in finding  # The hint.
        assert _stats_shown(page) == stats_before, "the stats read the rollups: nothing is served wrong"
        _screenshot(page, "3-repaired-rows-lost")
        verify = _manage(setup, "usage_verify")
        assert verify.returncode == 1, verify.stdout + verify.stderr
        refused = _manage(setup, "usage_reconcile", "--fix")
        assert refused.returncode != 0, refused.stdout + refused.stderr
        assert "Refusing --fix" in refused.stderr
        assert "Nothing was changed." in refused.stderr
        assert _counters(setup.database) == counters_before_repair

        # 5. The rollups are the truth: the lost rows are recorded.
        reconcile = _manage(setup, "usage_reconcile", "--from-rollups", "--fix")
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        recorded = re.findall(r"^recorded lost rows: \S+ \S+ ([\d,]+) calls?,", reconcile.stdout, re.MULTILINE)
        assert sum(int(calls.replace(",", "")) for calls in recorded) == summary["total_calls"], reconcile.stdout
        assert "LOWERED" not in reconcile.stdout

        # 6. Healthy, with the totals shown before the drop.
        assert _open_all_time(page, server.url) == 200
        _assert_no_banners(page)
        assert _stats_shown(page) == stats_before
        assert _working_parts_shown(page) == working_before
        assert _api_figures(page) == before
        assert _counters(setup.database) == counters_before_repair
        assert _manage(setup, "usage_verify").returncode == 0
        _screenshot(page, "4-healthy")
