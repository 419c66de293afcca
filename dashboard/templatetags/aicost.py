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
