"""Calendar periods in the configured TIME_ZONE. Only aware datetimes; ranges are half-open."""

from datetime import date, datetime, timedelta

from django.utils import timezone


def month_start(moment: datetime) -> date:
    """First day of the calendar month (in TIME_ZONE) that contains `moment`."""
    return timezone.localtime(moment).date().replace(day=1)


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar month (in TIME_ZONE) that contains `moment`, as aware datetimes."""
    first = month_start(moment)
    following = (first + timedelta(days=32)).replace(day=1)
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(first, datetime.min.time(), tzinfo=zone),
        datetime.combine(following, datetime.min.time(), tzinfo=zone),
    )


def day_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar day (in TIME_ZONE) that contains `moment`, as aware datetimes."""
    day = timezone.localtime(moment).date()
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(day, datetime.min.time(), tzinfo=zone),
        datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone),
    )
