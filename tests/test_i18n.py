# ruff: noqa: RUF001 -- Chinese is written with full-width punctuation.
"""aicost in English and Simplified Chinese: the language a request asks for, what is translated, and
the catalog itself (every string translated, none missing from it)."""

import ast
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.template import Context, Template
from django.test import override_settings
from django.utils import translation

from alerts.models import AlertType, BudgetAlert
from alerts.notifications import alert_subject, webhook_payload
from core.money import money_format
from ingest.services import usage_record
from tests.alert_helpers import set_budget

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
STATS = "/api/v1/ai-platforms/stats"
# The command README's "Translations" names (tests and benchmarks show nothing to people).
MAKEMESSAGES = ["makemessages", "-l", "zh_Hans", "--no-obsolete", "--ignore=tests", "--ignore=bench"]
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}

LABELS = {
    "today": ("Today", "今日"),
    "24h": ("Last 24 hours", "最近 24 小时"),
    "7d": ("Last 7 days", "最近 7 天"),
    "30d": ("Last 30 days", "最近 30 天"),
    "90d": ("Last 90 days", "最近 90 天"),
    "month": ("This month", "本月"),
    "all": ("All time", "全部"),
}


@pytest.fixture(autouse=True)
def _language_reset():
    """LocaleMiddleware leaves the last request's language active on the thread (a server activates
    one per request): tests after these must not run in Chinese."""
    yield
    translation.deactivate()


# --- the catalog --------------------------------------------------------------------------------


def _po_entries(path: Path) -> list[dict]:
    """The entries of a .po file: {"msgid", "msgid_plural", "msgstr": [...], "flags"}; the header left out."""
    entries, entry, key = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry and entry.get("msgid"):
                entries.append(entry)
            entry = None
            continue
        entry = entry if entry is not None else {"flags": "", "msgstr": {}}
        if line.startswith("#,"):
            entry["flags"] += line[2:]
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) (".*")$', line)
        if match:
            key = match[1]
            value = ast.literal_eval(match[2])
        else:
            value = ast.literal_eval(line)
        if key.startswith("msgstr"):
            entry["msgstr"][key] = entry["msgstr"].get(key, "") + value
        else:
            entry[key] = entry.get(key, "") + value
    return entries


def _msgids(path: Path) -> set[tuple[str, str]]:
    return {(entry.get("msgctxt", ""), entry["msgid"]) for entry in _po_entries(path)}


def test_every_message_of_the_catalog_is_translated():
    entries = _po_entries(CATALOG)
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"].values()) or not e["msgstr"]]
    assert untranslated == []
    assert [e["msgid"] for e in entries if "fuzzy" in e["flags"]] == []
    # Placeholders survive translation (msgfmt --check checks python-format too, where it is installed).
    for entry in entries:
        names = set(re.findall(r"%\((\w+)\)[sd]", entry["msgid"]))
        for text in entry["msgstr"].values():
            assert set(re.findall(r"%\((\w+)\)[sd]", text)) == names, entry["msgid"]


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext (msgfmt) is not installed")
def test_the_catalog_compiles_with_msgfmt_check():
    subprocess.run(["msgfmt", "--check", "-o", os.devnull, str(CATALOG)], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext (xgettext) is not installed")
def test_makemessages_finds_no_string_the_catalog_lacks(tmp_path):
    """A new English string without its translation fails here: makemessages, run on a copy of the
    project, must find exactly the catalog's messages."""
    copy = tmp_path / "aicost"
    skipped = {".git", ".venv", "staticfiles", "artifacts", "__pycache__", ".pytest_cache", ".ruff_cache"}
    shutil.copytree(ROOT, copy, ignore=lambda _dir, names: [n for n in names if n in skipped or n.endswith(".mo")])
    env = {**os.environ, "DEBUG": "true", "AICOST_ENV_FILE": "/dev/null", "DATABASE_URL": "sqlite:///:memory:"}
    subprocess.run(
        [sys.executable, "manage.py", *MAKEMESSAGES, "-v0"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
    )
    found = _msgids(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    committed = _msgids(CATALOG)
    assert sorted(found - committed) == [], "new strings: run makemessages -l zh_Hans and translate them"
    assert sorted(committed - found) == [], "strings no longer used: run makemessages -l zh_Hans --no-obsolete"


# --- the language of a request ------------------------------------------------------------------


@pytest.mark.parametrize("time_range", list(LABELS))
@pytest.mark.django_db
def test_every_time_label_in_both_languages(staff_client, time_range):
    english, chinese = LABELS[time_range]
    assert staff_client.get(STATS, {"time_range": time_range}).json()["data"]["time_label"] == english
    assert staff_client.get(STATS, {"time_range": time_range}, **EN).json()["data"]["time_label"] == english
    assert staff_client.get(STATS, {"time_range": time_range}, **ZH).json()["data"]["time_label"] == chinese


@pytest.mark.django_db
def test_the_incidents_request_answers_quan_bu(staff_client):
    response = staff_client.get(STATS, {"time_range": "all"}, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")
    assert response.status_code == 200
    assert response.json()["data"]["time_label"] == "全部"
    assert response["Content-Language"] == "zh-hans"


@pytest.mark.django_db
def test_language_code_is_the_default_for_requests_that_ask_for_none(staff_client):
    assert staff_client.get(STATS).json()["data"]["time_label"] == "All time"
    with override_settings(LANGUAGE_CODE="zh-hans"):
        assert staff_client.get(STATS).json()["data"]["time_label"] == "全部"
        assert staff_client.get(STATS, **EN).json()["data"]["time_label"] == "All time"


def test_language_code_comes_from_the_environment():
    code = "from django.conf import settings; print(settings.LANGUAGE_CODE)"
    env = {**os.environ, "DEBUG": "true", "AICOST_ENV_FILE": "/dev/null", "DJANGO_SETTINGS_MODULE": "aicost.settings"}
    env.pop("LANGUAGE_CODE", None)
    default = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    chosen = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "LANGUAGE_CODE": "zh-hans"}, capture_output=True, text=True
    )
    assert (default.stdout.strip(), chosen.stdout.strip()) == ("en-us", "zh-hans")
    assert [code for code, _name in settings.LANGUAGES] == ["en", "zh-hans"]


@pytest.mark.django_db
def test_admins_own_strings_and_ours_are_chinese(staff_client):
    index = staff_client.get("/admin/", **ZH).content.decode()
    assert "修改密码" in index  # Django's own "Change password".
    assert "注销" in index  # Django's own "Log out".
    for ours in ("AI 花费", "模型定价", "模型价格", "预算告警", "用量日志"):
        assert ours in index, ours
    assert "Change password" not in index
    english = staff_client.get("/admin/", **EN).content.decode()
    assert "Change password" in english
    assert "AI cost" in english


@pytest.mark.django_db
def test_admin_forms_show_chinese_labels_and_help_texts(staff_client):
    page = staff_client.get("/admin/pricing/modelpricing/add/", **ZH).content.decode()
    assert "每百万输入价格" in page
    assert "此模型所有价格和花费的 ISO 4217 币种代码。" in page
    assert "输入价格（每百万 Token）" in page


@pytest.mark.django_db
def test_api_errors_of_our_own_are_translated(staff_client):
    english = staff_client.get("/api/v1/budget/check", {"model": "no-such-model"}).json()["error"]["message"]
    chinese = staff_client.get("/api/v1/budget/check", {"model": "no-such-model"}, **ZH).json()["error"]["message"]
    assert english == "Unknown model 'no-such-model': it has no price entry, so it has no budget."
    assert chinese == "未知模型 'no-such-model'：它没有价格条目，因此没有预算。"


@pytest.mark.django_db
def test_a_401_says_what_to_send_in_chinese(client):
    body = client.get(STATS, **ZH).json()
    assert body["error"]["message"].startswith("未提供身份认证凭据。请发送")


# --- money and dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "language", "shown"),
    [
        ("1234.565", "USD", "en-us", "USD 1234.57"),
        ("1234.56", "CNY", "en", "CNY 1234.56"),
        ("1234.56", "CNY", "zh-hans", "¥1,234.56"),
        ("1234.564", "USD", "zh-hans", "$1,234.56"),
        ("1234567.5", "EUR", "zh-hans", "€1,234,567.50"),
        ("-3.5", "CNY", "zh-hans", "-¥3.50"),
        ("0", "CHF", "zh-hans", "CHF 0.00"),
        (None, "CNY", "zh-hans", "\u2013"),
    ],
)
def test_money_is_written_for_the_language(amount, currency, language, shown):
    assert money_format(None if amount is None else Decimal(amount), currency, language=language) == shown


def test_the_money_filter_follows_the_active_language():
    template = Template("{% load aicost %}{{ amount|money:currency }}")
    context = Context({"amount": Decimal("1234.5"), "currency": "CNY"})
    with translation.override("zh-hans"):
        assert template.render(context) == "¥1,234.50"
    with translation.override("en"):
        assert template.render(context) == "CNY 1234.50"


@pytest.mark.django_db
def test_the_budget_panel_writes_yuan_in_chinese(staff_client, settings):
    from datetime import UTC, datetime

    from pricing.models import ExchangeRate
    from pricing.services import model_pricing_budgets_set

    settings.AICOST_REPORTING_CURRENCY = "CNY"
    ExchangeRate.objects.create(
        base_currency="USD", quote_currency="CNY", rate=Decimal("7.2"), effective_from=datetime(2025, 1, 1, tzinfo=UTC)
    )
    model_pricing_budgets_set(budgets={"gpt-4o": Decimal("1234.5")}, currency="CNY")
    usage_record(model_name="gpt-4o", prompt_tokens=1000, completion_tokens=1000, cost=Decimal("12"))  # USD
    page = staff_client.get("/admin/ai-cost", **ZH).content.decode()
    assert "¥1,234.50" in page  # The budget, stated in CNY (and compared in CNY, the reporting currency).
    assert "¥86.40" in page  # Spent: 12 USD x 7.2.
    assert "CNY 1234.50" in staff_client.get("/admin/ai-cost", **EN).content.decode()


# --- what aicost writes outside a request ------------------------------------------------------


@pytest.mark.django_db
def test_alert_messages_and_notifications_are_in_language_code():
    set_budget("gpt-4o", "10")
    with override_settings(LANGUAGE_CODE="zh-hans"):
        usage_record(model_name="gpt-4o", prompt_tokens=10, completion_tokens=10, cost=Decimal("6"))
    alert = BudgetAlert.objects.get(alert_type=AlertType.MODEL_BUDGET, threshold_percent=50)
    assert "已用掉其月度预算的 60.00%" in alert.message
    assert "超过 50% 阈值" in alert.message
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        assert alert_subject(alert) == "[aicost] 提示：gpt-4o 的模型月度预算"
        assert webhook_payload(alert)["blocks"][2]["fields"][0]["text"] == "*模型*\ngpt-4o"
    set_budget("deepseek-chat", "10")
    usage_record(model_name="deepseek-chat", prompt_tokens=10, completion_tokens=10, cost=Decimal("6"))
    english = BudgetAlert.objects.get(model_name="deepseek-chat", threshold_percent=50)
    assert "has used 60.00% of its monthly budget" in english.message
    assert "(6.00000000 of 10.00000000 USD" in english.message  # Shown rounded once, not at 24 places.


@pytest.mark.django_db
def test_operator_commands_speak_language_code():
    usage_record(model_name="gpt-4o", prompt_tokens=10, completion_tokens=10)
    out = StringIO()
    with translation.override("zh-hans"):
        call_command("usage_verify", stdout=out)
    assert "日志、汇总、已清理月份和已记录缺口在 1 个月内一致（1 次调用），" in out.getvalue()
    out = StringIO()
    call_command("usage_verify", stdout=out)
    assert "The log, rollups, retired months and recorded gaps agree over 1 month(s) (1 calls)" in out.getvalue()


@pytest.mark.parametrize(
    ("record", "english", "chinese"),
    [
        ({"prompt_tokens": -1}, "Ensure this value is greater than or equal to 0.", "请确保该值大于或者等于 0。"),
        (
            {"prompt_tokens": 10, "cached_tokens": 11},
            "Cannot exceed prompt_tokens.",
            "不能超过 prompt_tokens。",
        ),
        (
            {"timestamp": "2026-11-24T10:00:00"},
            "Timestamp must include a time zone offset, e.g. 2026-11-24T10:00:00Z.",
            "时间戳必须带时区偏移，例如 2026-11-24T10:00:00Z。",
        ),
    ],
)
def test_ingestion_rule_errors_in_the_requests_language(writer, record, english, chinese):
    body = {"model_name": "gpt-4o", "prompt_tokens": 1, "completion_tokens": 1, **record}
    errors = {
        language: writer.post("/api/v1/usage/", body, format="json", HTTP_ACCEPT_LANGUAGE=language).json()["error"]
        for language in ("en", "zh-hans")
    }
    assert errors["en"]["message"].endswith(english)
    assert errors["zh-hans"]["message"].endswith(chinese)
    assert errors["en"]["field"] == errors["zh-hans"]["field"]


@pytest.mark.django_db
def test_price_rules_refuse_in_the_active_language():
    from django.core.exceptions import ValidationError

    from pricing.models import ModelPricing
    from pricing.services import model_name_patterns_check

    pricing = ModelPricing.objects.get(model_name="gpt-4o")
    for language, expected in (("en", "Prefix 'a' is listed twice."), ("zh-hans", "前缀 'a' 重复列出。")):
        with translation.override(language), pytest.raises(ValidationError) as refused:
            model_name_patterns_check(pricing=pricing, model_name="gpt-4o", patterns=[("prefix", "a"), ("prefix", "a")])
        assert refused.value.messages == [expected]


@pytest.mark.django_db
def test_the_incidents_banner_in_chinese(staff_client):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE ai_model_usage_log")  # Rolled back with the test (transactional DDL).
    page = staff_client.get("/admin/ai-cost", **ZH).content.decode()
    assert "数据库结构与应用不一致" in page
    assert "数据库“default”中缺少表 ai_model_usage_log（usage.UsageLog）" in page
    assert "python manage.py schema_repair --apply" in page
    english = staff_client.get("/admin/ai-cost", **EN).content.decode()
    assert "Table ai_model_usage_log (usage.UsageLog) is missing from database &#x27;default&#x27;" in english
