"""Template filters of the cost page."""

from decimal import Decimal

from django import template
from django.utils.translation import get_language

from core.money import money_format

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str | None) -> str:
    """{{ status.spent|money:status.currency }}: core.money.money_format in the active language."""
    return money_format(amount, currency, language=get_language() or "en")


@register.filter
def day(value) -> str:
    """{{ forecast.reaches_on|day }}: a calendar day as the page's script writes it: 2026-12-04 in
    English, 2026年12月4日 in Chinese."""
    if value is None:
        return ""
    if (get_language() or "en").startswith("en"):
        return value.isoformat()
    return f"{value.year}年{value.month}月{value.day}日"
