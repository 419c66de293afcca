"""The AI cost page: server-side checks, and an end-to-end run in Debian's Chromium."""

import json
import re
import shutil
import tempfile
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.templatetags.static import static
from django.test import override_settings

from alerts.models import PurposeBudget, UserBudget
from core.money import money_format
from dashboard.demo import demo_usage_load
from ingest.services import usage_record
from pricing.services import model_pricing_create
from tests.alert_helpers import set_budget
from tests.chromium import ARTIFACTS, chromium_context
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url

pytestmark = pytest.mark.django_db
PAGE = "/admin/ai-cost"


def test_the_page_is_inside_the_admin_and_linked_from_its_index(staff_client):
    assert f'href="{PAGE}"' in staff_client.get("/admin/").content.decode()
    page = staff_client.get(PAGE).content.decode()
    assert "AI cost" in page
    assert 'id="site-name"' in page  # The admin's own header: same look.
    assert static("vendor/chartjs/chart.umd.min.js") in page
    assert "cdn" not in page.lower()


def test_non_staff_are_sent_to_the_login(client, django_user_model):
    assert client.get(PAGE).status_code == 302
    assert client.get(PAGE)["Location"].startswith("/admin/login/")
    user = django_user_model.objects.create_user(username="plain", password="pw-12345-abc")
    client.force_login(user)
    assert client.get(PAGE)["Location"].startswith("/admin/login/")


def test_a_missing_table_shows_a_banner_instead_of_failing(staff_client):
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE ai_model_usage_log")  # Rolled back with the test (transactional DDL).
    response = staff_client.get(PAGE)
    assert response.status_code == 503
    page = response.content.decode()
    assert 'data-testid="schema-banner"' in page
    assert "<code>ai_model_usage_log</code>" in page
    assert "python manage.py schema_repair --apply" in page


def test_static_files_are_served_by_whitenoise_after_collectstatic(client):
    url = static("vendor/chartjs/chart.umd.min.js")
    assert ".min." in url
    assert url != "/static/vendor/chartjs/chart.umd.min.js"  # Hashed name from the manifest.
    response = client.get(url)
    assert response.status_code == 200
    assert b"Chart.js v4" in b"".join(response.streaming_content)[:200]
    assert "max-age=315360000" in response["Cache-Control"]


def _money(text: str) -> str:
    return f"{Decimal(text):.2f}"


def _unconverted_call() -> None:
    """A call of a model priced in EUR, for which no rate into the reporting currency exists: unconverted."""
    model_pricing_create(
        model_name="mistral-eur",
        provider="Mistral",
        display_name="Mistral (EUR)",
        model_type="chat",
        currency="EUR",
        input_price_per_million=Decimal("2"),
        output_price_per_million=Decimal("6"),
    )
    usage_record(model_name="mistral-eur", prompt_tokens=2000, completion_tokens=500)  # 0.007 EUR


@pytest.fixture
def served(transactional_db):
    with gunicorn_serving(database_url=shared_test_database_url()) as url:
        yield url
    _wait_for_server_sessions_to_end()


def _wait_for_server_sessions_to_end() -> None:
    """PostgreSQL ends a backend a moment after its client has gone; the test database can only be
    dropped once the server's sessions are gone."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)


@pytest.fixture
def browser(monkeypatch):
    profile = tempfile.mkdtemp(prefix="aicost-chromium-")
    with chromium_context(profile, monkeypatch) as context:
        yield context
        # ORM calls made while Playwright's event loop runs get their own connection (asgiref's
        # context-local storage); close it, or the test database cannot be dropped at the end.
        connections.close_all()
    shutil.rmtree(profile, ignore_errors=True)


def _logged_in_page(browser, url: str):
    """Open `url`, log in as the staff user "ops" on the admin's login form, wait for the cost page."""
    page = browser.new_page()
    page.goto(url)
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-pass-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("#ai-cost[data-ready=true]", timeout=20_000)
    return page


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_staff_sees_the_numbers_the_api_gives(browser, served, django_user_model):
    demo_usage_load(days=35, calls_per_day=40)
    _unconverted_call()
    _decision_calls()
    django_user_model.objects.create_user(username="ops", password="ops-pass-12345", is_staff=True)

    page = _logged_in_page(browser, f"{served}{PAGE}")

    def api(path: str) -> dict:  # Money exactly, as README says to read it; the page holds JavaScript numbers.
        text = page.evaluate(f"fetch('{path}', {{credentials: 'same-origin'}}).then(r => r.text())")
        return json.loads(text, parse_float=Decimal)["data"]

    def cards() -> dict:
        return {
            name: page.get_attribute(f'[data-testid="card-{name}"]', "data-value")
            for name in ("calls", "success-rate", "cost", "unpriced")
        }

    stats = api("/api/v1/ai-platforms/stats?time_range=30d")
    summary = stats["summary"]
    shown = cards()
    assert (shown["calls"], shown["unpriced"]) == (str(summary["total_calls"]), str(summary["unpriced_calls"]))
    assert (Decimal(shown["success-rate"]), Decimal(shown["cost"])) == (summary["success_rate"], summary["total_cost"])
    assert summary["total_calls"] > 0
    assert page.inner_text('[data-testid="card-cost"]') == f"USD {_money(summary['total_cost'])}"
    rows = page.locator('[data-testid="models-table"] tbody tr')
    assert rows.count() == len(stats["platforms"])
    first = stats["platforms"][0]
    assert rows.first.get_attribute("data-model") == first["model_name"]
    assert Decimal(rows.first.locator('[data-field="cost"]').get_attribute("data-value")) == first["cost"]
    # Each model's own cost in its currency, and in the reporting currency; the unconverted call
    # (EUR, no EUR->USD rate) is said above the cards and beside its model, never added as 0.
    assert (
        Decimal(rows.first.locator('[data-field="reporting-cost"]').get_attribute("data-value"))
        == (first["reporting_cost"])
    )
    assert summary["unconverted_calls"] == 1
    notice = page.locator('[data-testid="unconverted-notice"]')
    assert notice.is_visible()
    assert notice.get_attribute("data-value") == str(summary["unconverted_calls"])
    assert notice.inner_text() == "1 call unconverted (no exchange rate): its cost is not in the totals."
    eur = next(p for p in stats["platforms"] if p["model_name"] == "mistral-eur")
    assert (eur["currency"], eur["unconverted_calls"], eur["reporting_cost"]) == ("EUR", 1, 0)
    eur_row = page.locator('tr[data-model="mistral-eur"]')
    assert eur_row.locator('[data-field="cost"]').inner_text() == f"EUR {_money(eur['cost'])}"
    assert eur_row.locator('[data-field="reporting-cost"]').inner_text() == "USD 0.00 (+1 unconverted)"
    unpriced = next(p for p in stats["platforms"] if p["currency"] is None)
    unpriced_cost = page.locator(f'tr[data-model="{unpriced["model_name"]}"] [data-field="cost"]')
    assert unpriced_cost.inner_text() == "unpriced"  # Never shown as a cost of 0.
    # The cards and the chart show the same range (30 days), the chart stacked by model.
    assert page.get_attribute("#ai-cost", "data-loaded-days") == "30"
    trend = api("/api/v1/ai-platforms/cost-trend-daily?days=30")
    assert (
        Decimal(page.get_attribute('[data-testid="trend-summary"]', "data-total-cost"))
        == trend["summary"]["total_cost"]
    )
    assert page.is_visible('[data-testid="trend-chart"]')
    assert page.is_hidden('[data-testid="trend-empty"]')
    _check_stacked_trend(page, api, stats, days=30, total=trend)
    _check_provider_legend(page, stats)
    _check_top_groups(page, api, "30d")
    _check_budget_forecasts(page, api)
    _check_decision_lookup(page, api)

    page.select_option('[data-testid="time-range"]', "today")
    page.wait_for_selector("#ai-cost[data-loaded-range=today]")
    page.wait_for_selector("#ai-cost[data-loaded-days='1']")
    today = api("/api/v1/ai-platforms/stats?time_range=today")["summary"]
    assert cards()["calls"] == str(today["total_calls"])
    assert Decimal(cards()["cost"]) == today["total_cost"]
    assert page.inner_text('[data-testid="range-label"]') == "Today"

    page.click(".aicost-switch button[data-days='30']")
    page.wait_for_selector("#ai-cost[data-loaded-days='30']")
    trend30 = api("/api/v1/ai-platforms/cost-trend-daily?days=30")
    total30 = page.get_attribute('[data-testid="trend-summary"]', "data-total-cost")
    assert Decimal(total30) == trend30["summary"]["total_cost"]

    page.select_option('[data-testid="time-range"]', "30d")
    page.wait_for_selector("#ai-cost[data-loaded-range='30d']")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ai-cost-page.png"), full_page=True)
    assert (ARTIFACTS / "ai-cost-page.png").stat().st_size > 10_000


def _check_stacked_trend(page, api, stats: dict, *, days: int, total: dict) -> None:
    """The trend's datasets: the trend's five costliest models over its days and the others, as the
    trend's group_by=model answer gives them, labelled with the models' display names."""
    datasets = page.evaluate(
        "Chart.getChart('trend-chart').data.datasets.map((d) => ({label: d.label, model: d.model, data: d.data}))"
    )
    grouped = api(f"/api/v1/ai-platforms/cost-trend-daily?days={days}&group_by=model&limit=5")
    shown = [series for series in grouped["series"] if series["cost"] > 0]
    top = [series for series in shown if not series["other"]]
    assert len(top) == 5
    assert [d["model"] for d in datasets] == [series["key"] for series in top] + [""] * (len(shown) - len(top))
    display = {p["model_name"]: p["display_name"] for p in stats["platforms"]}
    assert [d["label"] for d in datasets[:5]] == [display.get(series["key"], series["key"]) for series in top]
    for dataset, series in zip(datasets, shown, strict=True):
        assert dataset["data"] == [float(d["cost"]) for d in series["daily"]]
    first = api(f"/api/v1/ai-platforms/cost-trend-daily?days={days}&model={top[0]['key']}")
    assert datasets[0]["data"] == [float(d["cost"]) for d in first["daily_trend"]]
    for n, day in enumerate(total["daily_trend"]):  # Stacked, the bars add up to each day's total.
        assert sum(d["data"][n] for d in datasets) == pytest.approx(float(day["cost"]), abs=1e-6)
    assert page.evaluate("Chart.getChart('trend-chart').options.scales.y.stacked") is True


def _check_provider_legend(page, stats: dict) -> None:
    labels = page.evaluate("Chart.getChart('provider-chart').data.labels")
    expected = [
        f"{'unknown' if p['provider'] == 'unknown' else p['provider']} {p['currency']} {_money(p['cost'])}"
        for p in stats["providers"]
        if p["cost"] > 0
    ]
    assert labels == expected


def _check_top_groups(page, api_json, time_range: str) -> None:
    """Top users and purposes: the stats API's group_by answer, the group without a user id (or purpose) left out."""
    for group_by, testid in (("user_id", "top-users"), ("purpose", "top-purposes")):
        path = f"/api/v1/ai-platforms/stats?time_range={time_range}&group_by={group_by}&limit=10"
        panel = page.locator(f'[data-testid="{testid}-panel"]')
        assert panel.get_attribute("data-supported") == "true"
        groups = [group for group in api_json(path)["groups"] if group["key"] is not None]  # None: no user id.
        assert panel.is_visible()
        rows = page.locator(f'[data-testid="{testid}"] tbody tr')
        assert [rows.nth(n).get_attribute("data-key") for n in range(rows.count())] == [
            str(group["key"]) for group in groups
        ]
        first = groups[0]
        assert Decimal(rows.first.locator('[data-field="cost"]').get_attribute("data-value")) == first["cost"]
        tokens = rows.first.locator('[data-field="tokens"]').inner_text()
        assert int(tokens.replace(",", "")) == first["prompt_tokens"] + first["completion_tokens"]


def _check_budget_forecasts(page, api) -> None:
    """Each budget bar's forecast is budget/check's: the month-end projection and the day it is reached."""
    rows = page.locator('[data-testid="budgets"] tr[data-budget]')
    assert rows.count() > 0
    checked = 0
    for model in ("gpt-4o", "claude-sonnet-4-5", "deepseek-chat"):
        check = api(f"/api/v1/budget/check?model={model}")
        budget = check["model_budget"]
        if budget["monthly_budget"] is None:
            continue
        cell = page.locator(f'[data-testid="budgets"] tr[data-model-budget="{check["model"]}"] [data-field="forecast"]')
        projected = Decimal(cell.get_attribute("data-projected"))
        # The page was drawn a few seconds before this check: the rest of today shrank meanwhile.
        assert abs(projected - budget["forecast"]["projected_month_end"]) <= Decimal("0.01") + projected / 1000
        assert (cell.get_attribute("data-reaches-on") or None) == budget["forecast"]["reaches_budget_on"]
        checked += 1
    assert checked > 0


def _check_decision_lookup(page, api) -> None:
    page.fill('[data-testid="decision-id"]', "page-decision")
    page.click('[data-testid="decision-submit"]')
    page.wait_for_selector("#ai-cost[data-decision='page-decision']")
    decision = api("/api/v1/usage/decisions/page-decision")
    totals = page.locator('[data-testid="decision-totals"]')
    assert totals.get_attribute("data-calls") == str(decision["totals"]["calls"]) == "2"
    assert Decimal(totals.get_attribute("data-cost")) == decision["totals"]["reporting_cost"]
    assert page.locator('[data-testid="decision-calls"] tbody tr').count() == 2
    page.fill('[data-testid="decision-id"]', "no-such-decision")
    page.click('[data-testid="decision-submit"]')
    page.wait_for_selector("#ai-cost[data-decision='']")
    error = page.evaluate(
        "fetch('/api/v1/usage/decisions/no-such-decision', {credentials: 'same-origin'}).then(r => r.json())"
    )["error"]["message"]
    assert page.inner_text('[data-testid="decision-error"]') == error
    assert page.is_hidden('[data-testid="decision-result"]')


def _decision_calls() -> None:
    for tokens in (1000, 3000):
        usage_record(
            model_name="gpt-4o", prompt_tokens=tokens, completion_tokens=100, decision_id="page-decision", user_id=3
        )


# What may stay Latin on the Chinese page: names of models and providers (from the API), currency codes,
# and the product's and protocols' names.
LATIN_ALLOWED = {"aicost", "AI", "Token", "HTTP", "UTC", "API", "CSV", "ID"}
# aicost's own text on the page: breadcrumbs, the content, the sidebar's app and model links, the
# trend's legend label (the doughnut's legend is provider names, drawn on the canvas).
VISIBLE_TEXT = """() => {
  const parts = [...document.querySelectorAll(".breadcrumbs, #content, #site-name")].map((e) => e.innerText);
  const nav = [...document.querySelectorAll("#nav-sidebar caption a, #nav-sidebar th a")].map((a) => a.innerText);
  const trend = Chart.getChart("trend-chart");
  return [...parts, ...nav, trend ? trend.data.datasets[0].label : ""].join("\\n");
}"""


def _latin_words(text: str) -> set[str]:
    """Lower case: the admin's style sheet writes table headers in capitals."""
    return {word.lower() for word in re.findall(r"[A-Za-z][A-Za-z]+", text)}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_page_in_chinese_has_no_english_of_its_own(browser, served, django_user_model):
    """Accept-Language: zh-hans, on a deployment whose LANGUAGE_CODE is zh-hans (so the stored alert
    messages are Chinese too): every word aicost writes on the page is Chinese; money is "$1,234.56"
    and days "2026年12月4日"."""
    with override_settings(LANGUAGE_CODE="zh-hans"):
        demo_usage_load(days=35, calls_per_day=40)
        set_budget("deepseek-chat", "0.50")  # Over budget at once: the alerts panel has Chinese messages.
        usage_record(model_name="deepseek-chat", prompt_tokens=10, completion_tokens=10, cost=Decimal("1"))
        _unconverted_call()
        _decision_calls()
        UserBudget.objects.create(user_id=None, monthly_budget=Decimal("3"), currency="USD")
        UserBudget.objects.create(user_id=3, monthly_budget=Decimal("50"), currency="USD")
        PurposeBudget.objects.create(purpose="chat", monthly_budget=Decimal("4"), currency="USD")
    django_user_model.objects.create_user(username="ops", password="ops-pass-12345", is_staff=True)
    page = browser.new_page()
    page.set_extra_http_headers({"Accept-Language": "zh-Hans,zh;q=0.9"})
    page.goto(f"{served}{PAGE}")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-pass-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("#ai-cost[data-ready=true]", timeout=20_000)

    def api(path: str) -> dict:
        return page.evaluate(f"fetch('{path}', {{credentials: 'same-origin'}}).then(r => r.json())")["data"]

    stats = api("/api/v1/ai-platforms/stats?time_range=30d")
    assert stats["time_label"] == "最近 30 天"
    assert page.inner_text('[data-testid="range-label"]') == "最近 30 天"
    summary = stats["summary"]
    assert summary["currency"] == "USD"
    shown_cost = page.inner_text('[data-testid="card-cost"]')
    assert shown_cost == money_format(Decimal(summary["total_cost"]), "USD", language="zh-hans")
    assert re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d{2}", shown_cost)
    labels = page.evaluate("Chart.getChart('trend-chart').data.labels")
    assert labels
    assert all(re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", label) for label in labels), labels
    assert page.locator('[data-testid="alerts"] li').count() > 0
    notice = "1 次调用未换算（没有汇率）：其花费未计入合计。"  # noqa: RUF001 -- Chinese punctuation
    assert page.inner_text('[data-testid="unconverted-notice"]') == notice

    allowed = _latin_words(" ".join(LATIN_ALLOWED))
    for entry in [*stats["platforms"], *stats["providers"]]:
        for name in ("display_name", "model_name", "provider", "currency"):
            allowed |= _latin_words(str(entry.get(name) or ""))
    purposes = api("/api/v1/ai-platforms/stats?time_range=all&group_by=purpose&limit=1000")["groups"]
    for purpose in [group["key"] for group in purposes if group["key"]] + ["chat"]:
        allowed |= _latin_words(purpose)  # Purposes (the top purposes, the budgeted one): data, shown as they are.
    allowed -= {"unknown"}  # The provider of unpriced models is aicost's word, shown translated.
    budgets = page.inner_text('[data-testid="budgets"]')
    assert "用户 3" in budgets
    assert "调用目的 chat" in budgets
    assert "按此速度月末" in budgets
    page.fill('[data-testid="decision-id"]', "page-decision")
    page.click('[data-testid="decision-submit"]')
    page.wait_for_selector("#ai-cost[data-decision='page-decision']")
    assert "2 次调用" in page.inner_text('[data-testid="decision-totals"]')
    for range_value in ("today", "all"):  # Both ends of the page's states, the table refilled each time.
        text = page.evaluate(VISIBLE_TEXT)
        for word in ("全部", "调用次数", "成功率", "花费", "预算", "告警"):
            assert word in text, word
        english = sorted(_latin_words(text) - allowed)
        assert english == [], f"English left on the Chinese page: {english}"
        page.select_option('[data-testid="time-range"]', range_value)
        page.wait_for_selector(f"#ai-cost[data-loaded-range={range_value}]")
    assert page.inner_text('[data-testid="range-label"]') == "全部"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ai-cost-page-zh-hans.png"), full_page=True)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_empty_data_shows_empty_states_not_broken_charts(browser, served, django_user_model):
    django_user_model.objects.create_user(username="ops", password="ops-pass-12345", is_staff=True)
    page = _logged_in_page(browser, f"{served}/admin/login/?next={PAGE}")
    for empty in ("trend-empty", "provider-empty", "models-empty", "alerts-empty"):
        assert page.is_visible(f'[data-testid="{empty}"]'), empty
    assert page.is_hidden('[data-testid="trend-chart"]')
    assert page.get_attribute('[data-testid="card-calls"]', "data-value") == "0"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ai-cost-page-empty.png"), full_page=True)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_broken_schema_shows_the_banner_over_the_panels_that_still_work(browser, served, django_user_model):
    """The incident: the usage log is gone while its migration stays recorded. The stats need the log
    (the minutes at the window's edges), so their panels say why they are missing; the trend (rollups),
    the budgets (model counters) and the alerts (their own table) are still shown."""
    demo_usage_load(days=10, calls_per_day=40)
    django_user_model.objects.create_user(username="ops", password="ops-pass-12345", is_staff=True)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE ai_model_usage_log")  # Committed: the server sees it.
    try:
        page = browser.new_page()
        responses = []
        page.on("response", lambda response: responses.append((response.url, response.status)))
        page.goto(f"{served}/admin/login/?next={PAGE}")
        page.fill("#id_username", "ops")
        page.fill("#id_password", "ops-pass-12345")
        page.click("input[type=submit]")
        page.wait_for_selector("#ai-cost[data-ready=true]", timeout=20_000)

        assert (f"{served}{PAGE}", 503) in responses  # Probes and monitors still see the breakage.
        banner = page.inner_text('[data-testid="schema-banner"]')
        assert "ai_model_usage_log" in banner
        assert "python manage.py schema_repair --apply" in banner
        assert page.get_attribute("#ai-cost", "data-failed") == "stats"

        stats_message = page.inner_text('[data-testid="stats-unavailable"]')
        reason = "ai_model_usage_log is missing from the database (HTTP 503, schema_unhealthy)."
        assert stats_message == f"Unavailable: {reason}"
        for message in ("provider-unavailable", "models-unavailable"):
            assert page.inner_text(f'[data-testid="{message}"]') == stats_message
        assert page.is_hidden('[data-testid="cards"]')

        assert page.is_visible('[data-testid="trend-chart"]')  # Drawn from the rollups.
        assert page.evaluate("Chart.getChart('trend-chart').data.datasets[0].data.some((cost) => cost > 0)")
        assert page.is_hidden('[data-testid="trend-unavailable"]')
        trend_total = page.get_attribute('[data-testid="trend-summary"]', "data-total-cost")
        assert Decimal(trend_total) > 0

        assert page.is_hidden('[data-testid="alerts-unavailable"]')
        alerts = page.locator('[data-testid="alerts"] li').count()
        assert alerts > 0 or page.is_visible('[data-testid="alerts-empty"]')

        assert page.is_visible('[data-testid="budgets"]')
        assert page.locator('[data-testid="budgets"] tr[data-budget]').count() > 0

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ai-cost-page-broken-schema.png"), full_page=True)
    finally:
        call_command("schema_repair", "--apply", stdout=StringIO())
