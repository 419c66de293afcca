"""Alert settings read from django.conf.settings, parsed and validated in one place."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The values of alerts.models.AlertLevel (this module is imported before models are ready).
LEVELS = ("info", "warning", "critical")


@dataclass(frozen=True)
class Threshold:
    percent: int
    level: str


class ThresholdSyntaxError(ValueError):
    pass


@lru_cache(maxsize=32)
def parse_thresholds(spec: str) -> tuple[Threshold, ...]:
    """'50:info,80:warning,100:critical' -> thresholds in ascending order. An empty spec means none."""
    thresholds: dict[int, Threshold] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        percent_text, sep, level = item.partition(":")
        level = level.strip().lower()
        if not sep or level not in LEVELS:
            raise ThresholdSyntaxError(f"{item!r}: expected percent:level with level one of {', '.join(LEVELS)}.")
        try:
            percent = int(percent_text)
        except ValueError:
            raise ThresholdSyntaxError(f"{item!r}: the percent must be a whole number.") from None
        if not 1 <= percent <= 32_767:
            raise ThresholdSyntaxError(f"{item!r}: the percent must be between 1 and 32767.")
        if percent in thresholds:
            raise ThresholdSyntaxError(f"{item!r}: {percent}% is given twice.")
        thresholds[percent] = Threshold(percent=percent, level=level)
    return tuple(sorted(thresholds.values(), key=lambda t: t.percent))


def budget_thresholds() -> tuple[Threshold, ...]:
    return parse_thresholds(settings.AICOST_ALERT_THRESHOLDS)


def error_rate_thresholds() -> tuple[Threshold, ...]:
    return parse_thresholds(settings.AICOST_ERROR_RATE_THRESHOLDS)


def spend_spike_thresholds() -> tuple[Threshold, ...]:
    return parse_thresholds(settings.AICOST_SPEND_SPIKE_THRESHOLDS)


def spend_spike_min_cost() -> Decimal:
    try:
        return Decimal(settings.AICOST_SPEND_SPIKE_MIN_COST)
    except InvalidOperation:
        raise ThresholdSyntaxError(
            f"AICOST_SPEND_SPIKE_MIN_COST={settings.AICOST_SPEND_SPIKE_MIN_COST!r} is not a decimal amount."
        ) from None


def webhook_url() -> str:
    return settings.AICOST_ALERT_WEBHOOK_URL.strip()


def webhook_url_problem(url: str) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http:// or https:// URL with a host"
    return None


def email_recipients() -> list[str]:
    return [address for address in settings.AICOST_ALERT_EMAIL_TO if address]


THRESHOLD_SETTINGS = ("AICOST_ALERT_THRESHOLDS", "AICOST_ERROR_RATE_THRESHOLDS", "AICOST_SPEND_SPIKE_THRESHOLDS")


def alert_settings_problems() -> list[str]:
    problems = []
    for name in THRESHOLD_SETTINGS:
        try:
            parse_thresholds(getattr(settings, name))
        except ThresholdSyntaxError as exc:
            problems.append(f"{name} is not valid: {exc}")
    try:
        spend_spike_min_cost()
    except ThresholdSyntaxError as exc:
        problems.append(str(exc))
    return problems


def alert_settings_validate() -> None:
    """Refuse to start with alert settings that would fail while recording usage."""
    problems = alert_settings_problems()
    if problems:
        raise ImproperlyConfigured(" ".join(problems) + " See .env.example.")
