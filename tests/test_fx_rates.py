"""Exchange rates as a history (pricing.services): the history rule, half-open spans, refusals, and
the admin that adds rates through the same service and never edits or deletes one."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from ingest.services import usage_record
from pricing.models import ExchangeRate
from pricing.selectors import exchange_rate_book
from pricing.services import (
    ExchangeRateQuote,
    RefusalCode,
    exchange_rate_add,
    exchange_rates_import,
    model_pricing_create,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


def day(number: int, hour: int = 0) -> datetime:
    return datetime(2026, 12, number, hour, tzinfo=UTC)


def quote(rate: str, start: datetime, base: str = "USD", to: str = "CNY") -> ExchangeRateQuote:
    return ExchangeRateQuote(
        base_currency=base, quote_currency=to, rate=Decimal(rate), effective_from=start, source="t"
    )


def history(base: str = "USD", to: str = "CNY") -> list[tuple[Decimal, datetime, datetime | None]]:
    rows = ExchangeRate.objects.filter(base_currency=base, quote_currency=to).order_by("effective_from")
    return list(rows.values_list("rate", "effective_from", "effective_to"))


def imported(*quotes: ExchangeRateQuote, now: datetime = NOW, apply: bool = True):
    return exchange_rates_import(quotes=list(quotes), apply=apply, now=now)


# --- the history rule -----------------------------------------------------------------------------


def test_a_first_import_fills_the_history_each_span_ending_where_the_next_begins():
    done = imported(quote("7.12", day(3)), quote("7.10", day(1)), quote("7.11", day(2)))
    assert (len(done.new), done.unchanged, done.closed, done.refused) == (3, 0, [], [])
    assert history() == [
        (Decimal("7.10"), day(1), day(2)),
        (Decimal("7.11"), day(2), day(3)),
        (Decimal("7.12"), day(3), None),
    ]
    assert all(row.pk is not None for row in done.new)


def test_a_newer_rate_not_in_the_past_closes_the_open_one():
    imported(quote("7.10", day(1)))
    done = imported(quote("7.20", day(11)))
    assert [(closed.rate.rate, closed.rate.effective_from, closed.effective_to) for closed in done.closed] == [
        (Decimal("7.10"), day(1), day(11))
    ]
    assert history() == [(Decimal("7.10"), day(1), day(11)), (Decimal("7.20"), day(11), None)]
    # A rate starting exactly now is not in the past.
    done = imported(quote("7.30", day(12)), now=day(12))
    assert len(done.new) == 1
    assert history()[-2:] == [(Decimal("7.20"), day(11), day(12)), (Decimal("7.30"), day(12), None)]


def test_a_new_rate_in_the_past_after_the_first_row_is_refused_and_nothing_changes():
    imported(quote("7.10", day(1)))
    before = history()
    done = imported(quote("7.15", day(5)), quote("7.16", day(10, 11)))
    assert done.new == []
    assert done.closed == []
    assert [(refusal.code, refusal.field) for refusal in done.refused] == [(RefusalCode.PAST, "effective_from")] * 2
    assert "2026-12-05 00:00 UTC is in the past" in done.refused[0].reason
    assert history() == before


def test_rates_older_than_the_first_row_fill_in_before_it_and_leave_it_alone():
    imported(quote("7.10", day(5)))
    done = imported(quote("7.00", day(1)), quote("7.05", day(3)))
    assert len(done.new) == 2
    assert done.closed == []
    assert history() == [
        (Decimal("7.00"), day(1), day(3)),
        (Decimal("7.05"), day(3), day(5)),
        (Decimal("7.10"), day(5), None),
    ]


def test_an_equal_row_is_unchanged_and_a_different_rate_for_a_stored_start_is_refused():
    imported(quote("7.10", day(1)), quote("7.11", day(2)))
    done = imported(quote("7.1000", day(1)), quote("7.12", day(2)))
    assert done.unchanged == 1
    assert done.new == []
    [refusal] = done.refused
    assert (refusal.code, refusal.field, refusal.quote.effective_from) == (RefusalCode.DIFFERENT_RATE, "rate", day(2))
    assert "A rate of 7.11 is stored from 2026-12-02 00:00 UTC" in refusal.reason
    assert history()[1] == (Decimal("7.11"), day(2), None)


def test_a_future_rate_inside_the_stored_history_is_refused():
    imported(quote("7.10", day(11)), quote("7.20", day(20)), now=NOW)
    done = imported(quote("7.15", day(15)))
    assert [refusal.code for refusal in done.refused] == [RefusalCode.INSIDE_HISTORY]
    assert [start for _rate, start, _end in history()] == [day(11), day(20)]


def test_one_batch_fills_the_past_refuses_what_it_must_and_closes_the_open_row():
    imported(quote("7.10", day(5)))
    done = imported(
        quote("7.00", day(1)),  # Before the first row: filled in.
        quote("7.10", day(5)),  # Stored: unchanged.
        quote("7.12", day(7)),  # In the past after the first row: refused.
        quote("7.20", day(11)),  # Newer, not past: closes day 5's row.
        quote("7.30", day(12)),  # And the next one after it.
        quote("7.31", day(12)),  # The same start with another rate: refused.
        quote("7.30", day(12)),  # Given twice, the same: once.
    )
    assert (len(done.new), done.unchanged, len(done.closed)) == (3, 1, 1)
    assert sorted(refusal.code for refusal in done.refused) == [RefusalCode.DUPLICATE, RefusalCode.PAST]
    assert history() == [
        (Decimal("7.00"), day(1), day(5)),
        (Decimal("7.10"), day(5), day(11)),
        (Decimal("7.20"), day(11), day(12)),
        (Decimal("7.30"), day(12), None),
    ]


def test_a_dry_run_reports_what_an_apply_does_and_writes_nothing():
    imported(quote("7.10", day(1)))
    batch = [quote("7.00", day(1, 0) - timedelta(days=3)), quote("7.20", day(11)), quote("7.30", day(8))]
    dry = imported(*batch, apply=False)
    assert history() == [(Decimal("7.10"), day(1), None)]
    assert all(row.pk is None for row in dry.new)
    applied = imported(*batch)
    assert not dry.applied
    assert applied.applied

    def summary(done):
        return (
            [(row.rate, row.effective_from, row.effective_to) for row in done.new],
            [(closed.rate.pk, closed.effective_to) for closed in done.closed],
            [(refusal.code, refusal.quote) for refusal in done.refused],
            done.unchanged,
        )

    assert summary(dry) == summary(applied)
    assert len(history()) == 3


def test_each_pair_is_its_own_history():
    imported(quote("7.10", day(1)), quote("0.14", day(1), base="CNY", to="USD"), quote("0.9", day(1), to="EUR"))
    done = imported(quote("7.20", day(11)))
    assert len(done.closed) == 1
    assert history(base="CNY", to="USD") == [(Decimal("0.14"), day(1), None)]
    assert history(to="EUR") == [(Decimal("0.9"), day(1), None)]


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"base_currency": "usd"}, "base_currency", "'usd' is not an ISO 4217 currency code"),
        ({"quote_currency": "CN"}, "quote_currency", "ISO 4217"),
        ({"quote_currency": "CNYX"}, "quote_currency", "ISO 4217"),
        ({"quote_currency": "USD"}, "quote_currency", "two different currencies"),
        ({"rate": Decimal(0)}, "rate", "above 0"),
        ({"rate": Decimal("-7.1")}, "rate", "above 0"),
        ({"rate": Decimal("NaN")}, "rate", "finite"),
        ({"rate": 7.1}, "rate", "Decimal"),
        ({"rate": Decimal("4E-19")}, "rate", "18 decimal places"),
        ({"rate": Decimal("1E12")}, "rate", "12 digits before the decimal point"),
        ({"effective_from": datetime(2026, 12, 1)}, "effective_from", "UTC offset"),  # noqa: DTZ001
        ({"source": "x" * 201}, "source", "200 characters"),
    ],
)
def test_invalid_quotes_are_refused_with_the_field_and_the_reason(changes, field, needle):
    given = quote("7.10", day(1))
    bad = ExchangeRateQuote(**{**given.__dict__, **changes})
    done = imported(given, bad)
    assert len(done.new) == 1  # The valid one is applied.
    [refusal] = done.refused
    assert (refusal.code, refusal.field) == (RefusalCode.INVALID, field)
    assert needle in refusal.reason
    with pytest.raises(ValidationError) as raised:
        exchange_rate_add(**{name: getattr(bad, name) for name in given.__dict__}, now=NOW)
    assert needle in raised.value.message_dict[field][0]


def test_rates_are_stored_at_18_places_rounded_half_to_even():
    imported(
        quote("1.0000000000000000005", day(1)),
        quote("1.0000000000000000015", day(2)),
        quote("0.1234567890123456789", day(3)),
    )
    assert [rate for rate, _start, _end in history()] == [
        Decimal("1.000000000000000000"),
        Decimal("1.000000000000000002"),
        Decimal("0.123456789012345679"),
    ]
    assert imported(quote("1.0000000000000000005", day(1))).unchanged == 1


def test_now_must_be_aware():
    with pytest.raises(ValidationError):
        exchange_rates_import(quotes=[], apply=False, now=datetime(2026, 12, 1))  # noqa: DTZ001


# --- exchange_rate_add (what admin calls) ---------------------------------------------------------


def test_adding_one_rate_follows_the_same_rule():
    first = exchange_rate_add(base_currency="USD", quote_currency="CNY", rate=Decimal("7.1"), effective_from=day(1))
    assert (first.rate, first.effective_to, first.pk is not None) == (Decimal("7.1"), None, True)
    assert exchange_rate_add(
        base_currency="USD", quote_currency="CNY", rate=Decimal("7.10"), effective_from=day(1), now=NOW
    ) == ExchangeRate.objects.get(pk=first.pk)
    with pytest.raises(ValidationError) as raised:
        exchange_rate_add(
            base_currency="USD", quote_currency="CNY", rate=Decimal("7.2"), effective_from=day(5), now=NOW
        )
    assert "in the past" in raised.value.message_dict["effective_from"][0]
    newer = exchange_rate_add(base_currency="USD", quote_currency="CNY", rate=Decimal("7.2"), now=NOW)
    assert newer.effective_from == NOW
    assert history() == [(Decimal("7.1"), day(1), NOW), (Decimal("7.2"), NOW, None)]


# --- read back: RateBook, half-open spans ---------------------------------------------------------


def test_the_rate_book_switches_rates_at_the_change_instant():
    imported(quote("7.10", day(1)), quote("7.20", day(3)), quote("0.5", day(1), base="EUR", to="GBP"))
    book = exchange_rate_book(base_currencies=["USD", "CNY"], quote_currency="CNY")
    micro = timedelta(microseconds=1)
    assert book.rate_at("USD", day(1) - micro) is None
    assert book.rate_at("USD", day(1)).rate == Decimal("7.10")
    assert book.rate_at("USD", day(3) - micro).rate == Decimal("7.10")
    assert book.rate_at("USD", day(3)).rate == Decimal("7.20")  # [day 1, day 3) then [day 3, ...).
    assert book.rate_at("USD", day(30)).rate == Decimal("7.20")
    converted = book.convert(Decimal("2.5"), "USD", day(3))
    assert (converted.amount, converted.rate.effective_from) == (Decimal("18.000"), day(3))
    assert book.convert(Decimal("2.5"), "USD", day(3) - micro).amount == Decimal("17.750")
    assert book.convert(Decimal("2.5"), "USD", day(1) - micro).amount is None
    assert book.convert(Decimal("2.5"), "CNY", day(1) - micro).amount == Decimal("2.5")
    # A history filled in later, before the first row, ends exactly where that row begins.
    imported(quote("7.00", day(1) - timedelta(days=2)))
    book = exchange_rate_book(base_currencies=["USD"], quote_currency="CNY", start=day(1) - micro, end=day(1) + micro)
    assert book.rate_at("USD", day(1) - micro).rate == Decimal("7.00")
    assert book.rate_at("USD", day(1)).rate == Decimal("7.10")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_imports_wait_for_each_other_while_calls_are_converted_and_stored_meanwhile():
    """Two imports of the same rate: the second waits for the first and then finds it unchanged. While
    the first holds its transaction (the open row closed, the new one added, not committed), a call of a
    CNY-priced model is stored and converted at the open rate without waiting."""
    model_pricing_create(
        model_name="qwen-fx-test",
        provider="Alibaba",
        display_name="Qwen",
        model_type="chat",
        currency="CNY",
        input_price_per_million=Decimal("2"),
        output_price_per_million=Decimal("8"),
    )
    now = timezone.now()
    [first_rate] = imported(quote("0.14", now - timedelta(days=1), base="CNY", to="USD"), now=now).new
    newer = quote("0.15", now + timedelta(days=1), base="CNY", to="USD")
    holding, release, results = threading.Event(), threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = exchange_rates_import(quotes=[newer], apply=True, now=timezone.now())
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    def second():
        try:
            results["second"] = exchange_rates_import(quotes=[newer], apply=True, now=timezone.now())
        finally:
            connection.close()

    first_thread, second_thread = threading.Thread(target=first), threading.Thread(target=second)
    first_thread.start()
    try:
        assert holding.wait(30)
        call = usage_record(model_name="qwen-fx-test", prompt_tokens=1_000_000, completion_tokens=0)
        assert (call.cost, call.exchange_rate_id, call.reporting_cost) == (Decimal(2), first_rate.pk, Decimal("0.28"))
        second_thread.start()
        second_thread.join(1.0)
        assert second_thread.is_alive()  # Waiting for the first import's transaction.
    finally:
        release.set()
        first_thread.join(30)
    second_thread.join(30)
    assert len(results["first"].new) == 1
    assert (results["second"].new, results["second"].unchanged, results["second"].closed) == ([], 1, [])
    assert history(base="CNY", to="USD") == [
        (Decimal("0.14"), now - timedelta(days=1), newer.effective_from),
        (Decimal("0.15"), newer.effective_from, None),
    ]


# --- admin ----------------------------------------------------------------------------------------

CHANGELIST = "admin:pricing_exchangerate_changelist"
ADD = "admin:pricing_exchangerate_add"


@pytest.fixture
def logged_in(client, staff_user):
    response = client.post(
        reverse("admin:login"), {"username": "staff", "password": "staff-pass-123", "next": "/admin/"}
    )
    assert response.status_code == 302
    return client


def _first_start() -> datetime:
    """A stored first rate ten days before today's midnight (the admin's checks use the real clock)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=10)


def _add_form(**values) -> dict:
    data = {
        "base_currency": "USD",
        "quote_currency": "CNY",
        "rate": "7.2",
        "effective_from_0": "",
        "effective_from_1": "",
        "source": "treasury",
    }
    return {**data, **values}


def test_admin_lists_filters_and_searches_the_history(logged_in):
    imported(quote("7.10", day(1)), quote("7.20", day(2)), quote("0.9", day(1), base="USD", to="EUR"))
    url = reverse(CHANGELIST)
    page = logged_in.get(url).content.decode()
    assert "USD→CNY" in page  # The pair filter.
    assert page.count('class="field-rate"') == 3
    filtered = logged_in.get(url, {"pair": "USD-EUR"}).content.decode()
    assert filtered.count('class="field-rate"') == 1
    open_rows = logged_in.get(url, {"open": "yes"}).content.decode()
    assert open_rows.count('class="field-rate"') == 2
    assert logged_in.get(url, {"q": "EUR"}).content.decode().count('class="field-rate"') == 1
    assert logged_in.get(url, {"source": "t"}).status_code == 200


def test_admin_adds_a_rate_through_the_service_closing_the_open_one(logged_in):
    first = _first_start()
    imported(quote("7.10", first), now=first)
    response = logged_in.post(reverse(ADD), _add_form(effective_from_0="2099-01-01", effective_from_1="00:00:00"))
    assert response.status_code == 302, response.content.decode()[-3000:]
    start = datetime(2099, 1, 1, tzinfo=UTC)
    assert history() == [(Decimal("7.10"), first, start), (Decimal("7.2"), start, None)]
    assert ExchangeRate.objects.get(effective_from=start).source == "treasury"


def test_admin_add_with_an_empty_start_starts_now_and_lowercase_codes_are_accepted(logged_in):
    before = datetime.now(UTC)
    response = logged_in.post(reverse(ADD), _add_form(base_currency="usd", quote_currency=" cny"))
    assert response.status_code == 302
    [(rate, start, end)] = history()
    assert (rate, end) == (Decimal("7.2"), None)
    assert before <= start <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"start_days": 5}, "is in the past"),  # After the first stored rate, before now.
        ({"quote_currency": "USD"}, "two different currencies"),
        ({"base_currency": "U1D"}, "ISO 4217"),
        ({"rate": "0"}, "above 0"),
        ({"start_days": 0, "rate": "7.10"}, "already stored"),
    ],
)
def test_admin_shows_the_services_refusal_on_the_form_and_stores_nothing(logged_in, values, message):
    first = _first_start()
    imported(quote("7.10", first), now=first)
    before = history()
    values = dict(values)
    if "start_days" in values:
        start = first + timedelta(days=values.pop("start_days"))
        values.update(effective_from_0=f"{start:%Y-%m-%d}", effective_from_1="00:00:00")
    response = logged_in.post(reverse(ADD), _add_form(**values))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert history() == before


def test_a_stored_rate_is_read_only_and_cannot_be_deleted(logged_in):
    [row] = imported(quote("7.10", day(1)), now=day(1)).new
    change = reverse("admin:pricing_exchangerate_change", args=[row.pk])
    page = logged_in.get(change)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="rate"' not in body  # Shown, not an input.
    assert 'name="_save"' not in body
    assert "7.10" in body
    assert logged_in.post(change, {"rate": "9", "base_currency": "USD", "quote_currency": "CNY"}).status_code == 403
    delete = reverse("admin:pricing_exchangerate_delete", args=[row.pk])
    assert logged_in.post(delete, {"post": "yes"}).status_code == 403
    logged_in.post(reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [row.pk]})
    assert history() == [(Decimal("7.10"), day(1), None)]


def test_admin_speaks_chinese(logged_in):
    imported(quote("7.10", day(1)))
    zh = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
    page = logged_in.get(reverse(CHANGELIST), **zh).content.decode()
    assert "汇率" in page
    assert "货币对" in page  # The pair filter's title.
    form = logged_in.get(reverse(ADD), **zh).content.decode()
    assert "源币种" in form
    assert "目标币种" in form
