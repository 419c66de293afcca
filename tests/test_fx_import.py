# ruff: noqa: RUF001 -- Chinese is written with full-width punctuation.
"""manage.py fx_import on samples of the ECB's real files (tests/fixtures/ecb, see its README): both
formats, cross rates through EUR checked against figures worked out by hand, N/A, the dry run,
re-import, --since, the zip the ECB publishes; and one run on SQLite."""

import shutil
import sqlite3
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from itertools import pairwise
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from pricing.ecb import EcbFormatError, ecb_file_read, ecb_rate_effective_from, ecb_rates_parse
from pricing.models import ExchangeRate
from pricing.selectors import exchange_rate_book
from tests.sqlite_process import sqlite_python

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ecb"
DAILY = FIXTURES / "eurofxref.csv"
HISTORY = FIXTURES / "eurofxref-hist-sample.csv"
# The sample's business days: 15 Dec 2025 to 9 Jan 2026 without weekends, 25, 26 Dec and 1 Jan.
SAMPLE_DAYS = 17
# Currencies with a figure on at least one of them (BGN until 31 Dec; CYP, EEK, ... never).
SAMPLE_CURRENCIES = 30


def midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def fx_import(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("fx_import", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def pair_rows(base: str, quote: str) -> list[tuple[Decimal, datetime, datetime | None]]:
    rows = ExchangeRate.objects.filter(base_currency=base, quote_currency=quote).order_by("effective_from")
    return list(rows.values_list("rate", "effective_from", "effective_to"))


def rate_from(base: str, quote: str, start: datetime) -> Decimal:
    return ExchangeRate.objects.get(base_currency=base, quote_currency=quote, effective_from=start).rate


# --- the two formats --------------------------------------------------------------------------------


def test_the_daily_file_is_read():
    rates = ecb_file_read(path=DAILY)
    assert rates.daily
    assert rates.currencies[:4] == ("USD", "JPY", "CZK", "DKK")
    assert len(rates.currencies) == 29
    [day] = rates.days
    assert day.day == date(2026, 10, 30)
    assert (day.rates["USD"], day.rates["JPY"], day.rates["GBP"], day.rates["CNY"]) == (
        Decimal("1.1172"),
        Decimal("175.68"),
        Decimal("0.83380"),
        Decimal("7.4326"),
    )
    assert set(day.rates) == set(rates.currencies)


def test_the_history_file_is_read_oldest_first_with_n_a_left_out():
    rates = ecb_file_read(path=HISTORY)
    assert not rates.daily
    assert len(rates.currencies) == 41
    assert [day.day for day in rates.days][:3] == [date(2025, 12, 15), date(2025, 12, 16), date(2025, 12, 17)]
    assert rates.days[-1].day == date(2026, 1, 9)
    assert len(rates.days) == SAMPLE_DAYS
    assert date(2025, 12, 25) not in {day.day for day in rates.days}
    by_day = {day.day: day.rates for day in rates.days}
    assert by_day[date(2025, 12, 31)]["BGN"] == Decimal("1.9558")
    assert "BGN" not in by_day[date(2026, 1, 2)]  # "N/A": Bulgaria adopted the euro.
    assert "CYP" in rates.currencies
    assert "CYP" not in rates.quoted_currencies()
    assert len(rates.quoted_currencies()) == SAMPLE_CURRENCIES
    assert by_day[date(2026, 1, 9)]["ISK"] == Decimal("147.4")


def test_a_rate_is_in_force_from_the_next_utc_midnight():
    assert ecb_rate_effective_from(date(2026, 1, 9)) == midnight(2026, 1, 10)
    assert ecb_rate_effective_from(date(2025, 12, 31)) == midnight(2026, 1, 1)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "header"),
        ("Day,USD,\n2026-01-09,1.1,\n", "header"),
        ("Date,USD,usd,\n2026-01-09,1.1,1.2,\n", "ISO 4217"),
        ("Date,USD,EUR,\n2026-01-09,1.1,1,\n", "other than EUR"),
        ("Date,USD,\n", "no day"),
        ("Date,USD,\n2026-13-09,1.1,\n", "line 2: '2026-13-09' is not a date"),
        ("Date, USD, \n31 Smarch 2026, 1.1, \n", "is not a date"),
        ("Date,USD,\n2026-01-09,-1.1,\n", "line 2, USD: '-1.1' is not a positive rate"),
        ("Date,USD,\n2026-01-09,abc,\n", "not a positive rate"),
        ("Date,USD,\n2026-01-09,1.1,2.2,3.3\n", "line 2 has 4 fields"),
        ("Date,USD,\n2026-01-09,1.1,\n2026-01-09,1.2,\n", "given twice"),
    ],
)
def test_files_that_are_not_the_ecbs_are_refused_naming_the_line(text, needle):
    with pytest.raises(EcbFormatError, match=needle):
        ecb_rates_parse(text=text)


# --- fx_import ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_history_is_imported_with_cross_rates_worked_out_by_hand():
    out, err = fx_import(str(HISTORY), "--to", "CNY", "--to", "USD", "--apply")
    assert err == ""
    # Into CNY: EUR and 29 others (not CNY itself); into USD the same: 2 x 30 pairs.
    assert ExchangeRate.objects.values_list("base_currency", "quote_currency").distinct().count() == 60
    # 31 Dec 2025: EUR→USD 1.175, EUR→CNY 8.2262, EUR→BGN 1.9558; in force from 1 Jan 2026 00:00 UTC.
    start = midnight(2026, 1, 1)
    assert rate_from("EUR", "CNY", start) == Decimal("8.2262")
    assert rate_from("USD", "CNY", start) == Decimal("7.001021276595744681")  # 8.2262 / 1.175
    assert rate_from("CNY", "USD", start) == Decimal("0.142836303518027765")  # 1.175 / 8.2262
    assert rate_from("BGN", "USD", start) == Decimal("0.600777175580325187")  # 1.175 / 1.9558
    # 9 Jan 2026 (a Friday): EUR→USD 1.1642, CNY 8.1288, JPY 183.52, GBP 0.8677; from Saturday 00:00.
    start = midnight(2026, 1, 10)
    assert rate_from("USD", "CNY", start) == Decimal("6.982305445799690775")  # 8.1288 / 1.1642
    assert rate_from("JPY", "CNY", start) == Decimal("0.044293809938971229")  # 8.1288 / 183.52
    assert rate_from("GBP", "USD", start) == Decimal("1.341707963581883139")  # 1.1642 / 0.8677
    assert rate_from("EUR", "USD", start) == Decimal("1.1642")
    assert "EUR→USD: 17 new, 0 unchanged, 0 refused" in out
    assert "Total: 1008 new, 0 unchanged, 0 closed, 0 refused." in out  # 58 pairs x 17 days + 2 x 11 (BGN).
    assert "Stored 1008 new rate(s)." in out
    assert ExchangeRate.objects.count() == 1008
    assert set(ExchangeRate.objects.values_list("source", flat=True)) == {
        "ECB reference rates (eurofxref-hist-sample.csv)"
    }


@pytest.mark.django_db
def test_weekends_and_holidays_keep_the_last_business_days_rate():
    fx_import(str(HISTORY), "--to", "CNY", "--from", "USD", "--apply")
    rows = pair_rows("USD", "CNY")
    assert len(rows) == SAMPLE_DAYS
    assert all(end == following for (_r, _s, end), (_r2, following, _e2) in pairwise(rows))
    assert rows[-1][2] is None  # The newest stays in force.
    book = exchange_rate_book(base_currencies=["USD"], quote_currency="CNY")
    # Christmas: published Wednesday 24 Dec, next on Monday 29 Dec (in force from Tuesday 30 Dec).
    christmas = book.rate_at("USD", datetime(2025, 12, 28, 23, 59, tzinfo=UTC))
    assert christmas.effective_from == midnight(2025, 12, 25)
    assert christmas.rate == Decimal("7.014422669042165097")  # 8.2679 / 1.1787
    assert book.rate_at("USD", midnight(2025, 12, 30)).effective_from == midnight(2025, 12, 30)
    # Friday 2 Jan's rate from Saturday 3 Jan 00:00 until Tuesday 6 Jan 00:00 (Monday's rate).
    weekend = book.rate_at("USD", datetime(2026, 1, 4, 12, tzinfo=UTC))
    assert (weekend.effective_from, weekend.effective_to) == (midnight(2026, 1, 3), midnight(2026, 1, 6))
    assert book.rate_at("USD", midnight(2026, 1, 6) - timedelta(microseconds=1)) == weekend
    assert book.rate_at("USD", midnight(2025, 12, 16) - timedelta(microseconds=1)) is None


@pytest.mark.django_db
def test_a_currency_not_quoted_keeps_its_last_rate_and_one_never_quoted_gets_none():
    out, _err = fx_import(str(HISTORY), "--to", "USD", "--apply")
    bgn = pair_rows("BGN", "USD")
    assert len(bgn) == 11  # 15 to 31 Dec; N/A from 2 Jan.
    assert bgn[-1] == (Decimal("0.600777175580325187"), midnight(2026, 1, 1), None)
    assert exchange_rate_book(base_currencies=["BGN"], quote_currency="USD").rate_at(
        "BGN", midnight(2026, 1, 9)
    ).effective_from == midnight(2026, 1, 1)
    assert pair_rows("CYP", "USD") == []
    assert "CYP→USD" not in out
    assert "BGN→USD: 11 new" in out


@pytest.mark.django_db
def test_the_dry_run_shows_the_changes_and_writes_nothing():
    out, _err = fx_import(str(HISTORY), "--to", "CNY")
    assert ExchangeRate.objects.count() == 0
    assert "eurofxref-hist-sample.csv: the ECB's history file, 17 day(s) from 2025-12-15 to 2026-01-09" in out
    assert "  USD→CNY: 17 new, 0 unchanged, 0 refused; new rates from 2025-12-16 00:00 to 2026-01-10 00:00" in out
    assert "Total: 504 new, 0 unchanged, 0 closed, 0 refused." in out
    assert "Dry run: nothing was written. Run again with --apply to store the new rates." in out
    assert len(out.splitlines()) == 1 + 30 + 2  # A line per pair, not per rate.


@pytest.mark.django_db
def test_a_second_import_is_all_unchanged():
    fx_import(str(HISTORY), "--to", "CNY", "--apply")
    stored = sorted(ExchangeRate.objects.values_list("pk", "rate", "effective_from", "effective_to"))
    for args in (("--apply",), ()):
        out, err = fx_import(str(HISTORY), "--to", "CNY", *args)
        assert "Total: 0 new, 504 unchanged, 0 closed, 0 refused." in out
        assert "USD→CNY: 0 new, 17 unchanged, 0 refused" in out
        assert err == ""
    assert sorted(ExchangeRate.objects.values_list("pk", "rate", "effective_from", "effective_to")) == stored


@pytest.mark.django_db
def test_the_daily_file_after_the_history_is_refused_as_past_and_shown_so():
    """The sample history ends on 9 Jan 2026; the daily file's 30 Oct 2026 rate starts on 31 Oct, which
    is after the pair's first rate and before now: refused, reported once per pair."""
    fx_import(str(HISTORY), "--to", "CNY", "--from", "USD", "--apply")
    out, err = fx_import(str(DAILY), "--to", "CNY", "--from", "USD", "--apply")
    assert "USD→CNY: 0 new, 0 unchanged, 1 refused" in out
    assert "Total: 0 new, 0 unchanged, 0 closed, 1 refused." in out
    assert err.startswith("! USD→CNY: 1 refused, e.g. 2026-10-31 00:00 UTC is in the past")
    assert len(pair_rows("USD", "CNY")) == SAMPLE_DAYS


@pytest.mark.django_db
def test_the_daily_file_alone_is_imported():
    out, _err = fx_import(str(DAILY), "--apply")  # Into AICOST_REPORTING_CURRENCY, USD.
    assert "eurofxref.csv: the ECB's daily file, 1 day(s) from 2026-10-30 to 2026-10-30, 29 currencies." in out
    assert "Total: 29 new" in out  # EUR and 28 others into USD.
    assert rate_from("EUR", "USD", midnight(2026, 10, 31)) == Decimal("1.1172")
    assert rate_from("CNY", "USD", midnight(2026, 10, 31)) == Decimal("0.150310792993030703")  # 1.1172 / 7.4326
    assert pair_rows("GBP", "USD") == [(Decimal("1.339889661789397937"), midnight(2026, 10, 31), None)]


@pytest.mark.django_db
@pytest.mark.parametrize("since", ["2026-01-03", "2026-01-04", "2026-01-05"])
def test_since_keeps_the_rate_in_force_at_that_day_and_the_later_ones(since):
    out, _err = fx_import(str(HISTORY), "--to", "CNY", "--from", "USD", "--since", since, "--apply")
    rows = pair_rows("USD", "CNY")
    # Friday 2 Jan's (in force from Saturday 3 Jan 00:00) and Monday 5 to Friday 9 Jan's.
    assert [start for _rate, start, _end in rows] == [midnight(2026, 1, day) for day in (3, 6, 7, 8, 9, 10)]
    assert "Total: 6 new" in out
    # The older ones may still be filled in later: they end where the stored history begins.
    fx_import(str(HISTORY), "--to", "CNY", "--from", "USD", "--apply")
    rows = pair_rows("USD", "CNY")
    assert len(rows) == SAMPLE_DAYS
    assert rows[10][1:] == (midnight(2026, 1, 1), midnight(2026, 1, 3))


@pytest.mark.django_db
def test_the_ecbs_zip_is_read_like_its_csv(tmp_path):
    archive = tmp_path / "eurofxref-hist.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(HISTORY, "eurofxref-hist.csv")
    from_zip, _err = fx_import(str(archive), "--to", "CNY", "--apply")
    assert "Total: 504 new" in from_zip
    assert "eurofxref-hist.zip: the ECB's history file, 17 day(s)" in from_zip
    from_csv, _err = fx_import(str(HISTORY), "--to", "CNY")
    assert "Total: 0 new, 504 unchanged, 0 closed, 0 refused." in from_csv
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zipped:
        zipped.write(HISTORY, "a.csv")
        zipped.write(DAILY, "b.csv")
    with pytest.raises(CommandError, match="one CSV file"):
        fx_import(str(two))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--to", "XYZ"), "has no rates for XYZ"),
        (("--from", "CYP", "--from", "ABC"), "has no rates for ABC"),
        (("--to", "usd1"), "is not an ISO 4217 currency code"),
        (("--since", "yesterday"), "--since takes a date"),
    ],
)
def test_bad_arguments_are_clear_errors(args, needle):
    with pytest.raises(CommandError, match=needle):
        fx_import(str(HISTORY), *args)
    assert ExchangeRate.objects.count() == 0


@pytest.mark.django_db
def test_a_file_that_is_not_the_ecbs_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text(HISTORY.read_text().replace("1.1642", "1,1642", 1))
    with pytest.raises(CommandError, match=r"broken\.csv: line 2 has 43 fields"):
        fx_import(str(broken))
    with pytest.raises(CommandError, match=r"missing\.csv"):
        fx_import(str(tmp_path / "missing.csv"))


@pytest.mark.django_db
def test_the_operators_output_is_chinese_under_zh_hans():
    with translation.override("zh-hans"):
        out, _err = fx_import(str(HISTORY), "--to", "CNY", "--from", "USD")
    assert "欧洲央行的历史文件，17 天" in out
    assert "新增 17，未变 0，拒绝 0" in out
    assert "合计：新增 17，未变 0，结束 0，拒绝 0。" in out
    assert "试运行：未写入任何内容。" in out


# --- SQLite ---------------------------------------------------------------------------------------

READ_BACK = """
import django, json
django.setup()
from pricing.models import ExchangeRate
rows = ExchangeRate.objects.filter(base_currency="USD", quote_currency="CNY").order_by("effective_from")
print(json.dumps([[str(r.rate), r.effective_from.isoformat(), r.effective_to and r.effective_to.isoformat()]
                  for r in rows]))
"""


@pytest.mark.slow
def test_the_import_on_sqlite(tmp_path):
    """The embedded default: a migrated SQLite file, the history imported, then imported again (all
    unchanged: SQLite keeps 15 significant digits of a rate, which the comparison allows for)."""
    import json

    db = tmp_path / "fx.sqlite3"
    migrated = sqlite_python(db, "manage.py", "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    archive = tmp_path / "eurofxref-hist.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(HISTORY, "eurofxref-hist.csv")
    first = sqlite_python(db, "manage.py", "fx_import", str(archive), "--to", "CNY", "--to", "USD", "--apply")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Total: 1008 new, 0 unchanged, 0 closed, 0 refused." in first.stdout
    again = sqlite_python(db, "manage.py", "fx_import", str(HISTORY), "--to", "CNY", "--to", "USD", "--apply")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Total: 0 new, 1008 unchanged, 0 closed, 0 refused." in again.stdout
    assert again.stderr == ""
    rows = json.loads(sqlite_python(db, "-c", READ_BACK).stdout.strip().splitlines()[-1])
    assert len(rows) == SAMPLE_DAYS
    by_start = {start: (Decimal(rate), end) for rate, start, end in rows}
    rate, end = by_start["2026-01-01T00:00:00+00:00"]
    assert end == "2026-01-03T00:00:00+00:00"
    assert abs(rate - Decimal("7.001021276595744681")) < Decimal("1E-14")  # 8.2262 / 1.175
    assert by_start["2026-01-10T00:00:00+00:00"][1] is None
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ai_exchange_rate").fetchone() == (1008,)
    shutil.rmtree(tmp_path, ignore_errors=True)
