"""demo_setup on PostgreSQL: the demo goes only into a database with no usage on record (the log or
anything derived from it), the staff password survives a second run, and a broken schema is refused
with the guard's findings and the repair instead of a raw database error."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from dashboard.demo import DEMO_STAFF_USERNAME, demo_staff_login_ensure, demo_usage_load
from ingest.services import usage_record
from usage.models import (
    UsageLog,
    UsageRetiredMonth,
    UsageRollupDaily,
    UsageRollupDailyTotal,
    UsageRollupHour,
    UsageRollupHourTotal,
)
from usage.rollups import quarter_hour_floor
from usage.selectors import usage_any_recorded

pytestmark = pytest.mark.django_db


def _hour() -> datetime:
    return timezone.now().replace(minute=0, second=0, microsecond=0)


USAGE_HOLDERS = {
    "log": lambda: usage_record(model_name="gpt-4o-mini", prompt_tokens=10, completion_tokens=5),
    "hour delta row": lambda: UsageRollupHour.objects.create(bucket=_hour(), model_name="gpt-4o-mini", calls=1),
    "hour rollup": lambda: UsageRollupHour.objects.create(
        bucket=_hour(), model_name="gpt-4o-mini", calls=1, compacted=True
    ),
    "hour total": lambda: UsageRollupHourTotal.objects.create(bucket=_hour(), calls=1),
    "day rollup": lambda: UsageRollupDaily.objects.create(day=date(2026, 3, 1), model_name="gpt-4o-mini", calls=1),
    "day total": lambda: UsageRollupDailyTotal.objects.create(day=date(2026, 3, 1), calls=1),
    "retired month": lambda: UsageRetiredMonth.objects.create(
        month=date(2025, 1, 1), model_name="gpt-4o-mini", calls=1, cost=Decimal("0.01"), retired_at=timezone.now()
    ),
}


def test_an_empty_database_has_no_usage_on_record():
    assert not usage_any_recorded()


@pytest.mark.parametrize("holder", USAGE_HOLDERS)
def test_usage_in_the_log_or_anything_derived_from_it_is_on_record(holder):
    USAGE_HOLDERS[holder]()
    assert usage_any_recorded()


@pytest.mark.parametrize("holder", [name for name in USAGE_HOLDERS if name != "log"])
def test_the_demo_is_not_loaded_over_derived_usage_whose_log_rows_are_gone(holder):
    USAGE_HOLDERS[holder]()
    assert demo_usage_load(days=1, calls_per_day=5) == 0
    assert not UsageLog.objects.exists()


def test_the_demo_loads_into_an_empty_database():
    loaded = demo_usage_load(days=1, calls_per_day=5)
    assert loaded == UsageLog.objects.count() > 0


def test_the_demo_ends_at_the_start_of_the_current_quarter_hour():
    """The stats read a window's unfinished quarter hour from the log only: demo calls in it would
    leave "All time" once the log is lost (the end-to-end replay compares totals across that)."""
    quarter = quarter_hour_floor(timezone.now())
    demo_usage_load(days=0, calls_per_day=2000)
    if quarter_hour_floor(timezone.now()) != quarter:
        pytest.skip("a quarter hour began while the demo loaded; its end is ambiguous")
    latest = UsageLog.objects.order_by("-timestamp").values_list("timestamp", flat=True).first()
    assert quarter - timedelta(minutes=15) < latest < quarter


def test_a_second_run_keeps_the_staff_password():
    first = StringIO()
    call_command("demo_setup", days=0, calls_per_day=1, stdout=first)
    password = first.getvalue().split(f"Staff login: {DEMO_STAFF_USERNAME} / ")[1].split()[0]
    second = StringIO()
    call_command("demo_setup", days=0, calls_per_day=1, stdout=second)
    assert f"Staff login: {DEMO_STAFF_USERNAME} (password unchanged)" in second.getvalue()
    assert f"python manage.py changepassword {DEMO_STAFF_USERNAME}" in second.getvalue()
    assert password not in second.getvalue()
    assert get_user_model().objects.get(username=DEMO_STAFF_USERNAME).check_password(password)


def test_an_admin_without_a_usable_password_gets_a_new_one():
    user = get_user_model().objects.create_user(username=DEMO_STAFF_USERNAME)
    user.set_unusable_password()
    user.save()
    login = demo_staff_login_ensure()
    user.refresh_from_db()
    assert login.password
    assert user.check_password(login.password)
    assert (user.is_staff, user.is_superuser, user.is_active) == (True, True, True)


def test_an_existing_admin_keeps_its_password_and_stays_staff():
    get_user_model().objects.create_user(username=DEMO_STAFF_USERNAME, password="chosen-by-me", is_staff=False)
    login = demo_staff_login_ensure()
    user = get_user_model().objects.get(username=DEMO_STAFF_USERNAME)
    assert login.password is None
    assert user.check_password("chosen-by-me")
    assert (user.is_staff, user.is_superuser) == (True, True)


def test_a_broken_schema_is_refused_with_the_findings_and_the_repair():
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE ai_model_usage_log")  # rolled back with the test's transaction
    with pytest.raises(CommandError) as refused:
        call_command("demo_setup", days=0, calls_per_day=1, stdout=StringIO())
    message = str(refused.value)
    assert "aicost.E001" in message
    assert "ai_model_usage_log" in message
    assert "python manage.py schema_repair --apply" in message
    assert not get_user_model().objects.filter(username=DEMO_STAFF_USERNAME).exists()


@pytest.mark.parametrize("arguments", [["--days", "-1"], ["--calls-per-day", "0"]])
def test_bad_numbers_are_refused(arguments):
    with pytest.raises(CommandError, match="--days must be 0 or more"):
        call_command("demo_setup", *arguments, stdout=StringIO())
