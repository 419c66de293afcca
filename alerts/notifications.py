"""Sending one alert over one channel: e-mail through Django's mail backend, or a Slack-compatible
JSON webhook. Each send returns an outcome and never raises; the caller records it."""

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from alerts import config
from alerts.models import AlertLevel, BudgetAlert, DeliveryChannel

LEVEL_EMOJI = {
    AlertLevel.INFO: ":information_source:",
    AlertLevel.WARNING: ":warning:",
    AlertLevel.CRITICAL: ":rotating_light:",
}
LEVEL_COLOR = {AlertLevel.INFO: "#439FE0", AlertLevel.WARNING: "#FFA500", AlertLevel.CRITICAL: "#D00000"}
ERROR_TEXT_LIMIT = 500


@dataclass(frozen=True)
class DeliveryOutcome:
    succeeded: bool
    duration_ms: int
    status_code: int | None = None
    error: str = ""

    def describe(self) -> str:
        return f"HTTP {self.status_code}" if self.status_code and not self.error else self.error


# The level as notifications write it (lower case, upper case in the subject), translated.
LEVEL_WORDS = {
    AlertLevel.INFO: gettext_noop("info"),
    AlertLevel.WARNING: gettext_noop("warning"),
    AlertLevel.CRITICAL: gettext_noop("critical"),
}


def _level(alert: BudgetAlert) -> str:
    return _(LEVEL_WORDS[alert.alert_level]) if alert.alert_level in LEVEL_WORDS else alert.alert_level


def _scope(alert: BudgetAlert) -> str:
    return _("all models") if alert.model_name == "*" else alert.model_name


def alert_subject(alert: BudgetAlert) -> str:
    return _("[aicost] %(level)s: %(type)s for %(scope)s") % {
        "level": _level(alert).upper(),
        "type": alert.get_alert_type_display(),
        "scope": _scope(alert),
    }


def _money_fact(alert: BudgetAlert, amount) -> str:
    """An alert's amount with the currency it was raised in (stored in its details since budgets and
    spikes compare the reporting currency; older alerts may not say)."""
    currency = alert.details.get("currency") if isinstance(alert.details, dict) else None
    return f"{amount} {currency}" if currency else str(amount)


def _facts(alert: BudgetAlert) -> list[tuple[str, str]]:
    facts = [
        (_("Model"), _scope(alert)),
        (_("Level"), _level(alert)),
        (_("Threshold"), f"{alert.threshold_percent}%"),
        (_("Observed"), f"{alert.usage_percentage}%"),
        (_("Current cost"), _money_fact(alert, alert.current_cost)),
    ]
    if alert.budget_limit is not None:
        label = _("Average") if alert.alert_type == "spend_spike" else _("Budget")
        facts.append((label, _money_fact(alert, alert.budget_limit)))
    facts.append((_("Period from"), str(alert.period_start)))
    return facts


def webhook_payload(alert: BudgetAlert) -> dict:
    """Slack incoming-webhook format: `text` for notifications and plain clients, blocks for Slack."""
    subject = alert_subject(alert)
    return {
        "text": f"{LEVEL_EMOJI.get(alert.alert_level, '')} {subject}: {alert.message}".strip(),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.message}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in _facts(alert)],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _("aicost alert #%(id)s") % {"id": alert.pk}}]},
        ],
        "attachments": [{"color": LEVEL_COLOR.get(alert.alert_level, "#cccccc"), "fallback": alert.message}],
    }


def _email_body(alert: BudgetAlert) -> str:
    lines = [alert.message, ""]
    lines += [f"{name}: {value}" for name, value in _facts(alert)]
    raised = f"{alert.created_at:%Y-%m-%d %H:%M %Z}"
    lines += ["", _("aicost alert #%(id)s, raised %(at)s.") % {"id": alert.pk, "at": raised}]
    return "\n".join(lines)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def send_email(alert: BudgetAlert) -> DeliveryOutcome:
    started = time.monotonic()
    recipients = config.email_recipients()
    if not recipients:
        return DeliveryOutcome(False, 0, error="No recipients: AICOST_ALERT_EMAIL_TO is empty.")
    try:
        mail_connection = get_connection(timeout=settings.AICOST_ALERT_DELIVERY_TIMEOUT)
        message = EmailMessage(
            subject=alert_subject(alert), body=_email_body(alert), to=recipients, connection=mail_connection
        )
        message.send(fail_silently=False)
    except Exception as exc:  # Any backend failure (SMTP, DNS, auth) is an outcome, not a crash.
        return DeliveryOutcome(False, _elapsed_ms(started), error=f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT])
    return DeliveryOutcome(True, _elapsed_ms(started))


def post_webhook(alert: BudgetAlert) -> DeliveryOutcome:
    started = time.monotonic()
    url = config.webhook_url()
    problem = config.webhook_url_problem(url) if url else "AICOST_ALERT_WEBHOOK_URL is empty"
    if problem:
        return DeliveryOutcome(False, 0, error=f"Webhook not usable: {problem}.")
    request = urllib.request.Request(  # noqa: S310 -- the scheme is checked to be http(s) above.
        url,
        data=json.dumps(webhook_payload(alert)).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "aicost-alerts/1.0"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.AICOST_ALERT_DELIVERY_TIMEOUT) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        return DeliveryOutcome(False, _elapsed_ms(started), status_code=exc.code, error=f"HTTP {exc.code} {exc.reason}")
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs.
        reason = getattr(exc, "reason", exc)
        return DeliveryOutcome(False, _elapsed_ms(started), error=f"{type(exc).__name__}: {reason}"[:ERROR_TEXT_LIMIT])
    if not 200 <= status < 300:
        return DeliveryOutcome(False, _elapsed_ms(started), status_code=status, error=f"HTTP {status}")
    return DeliveryOutcome(True, _elapsed_ms(started), status_code=status)


SENDERS = {DeliveryChannel.EMAIL: send_email, DeliveryChannel.WEBHOOK: post_webhook}


def deliver(*, channel: str, alert: BudgetAlert) -> DeliveryOutcome:
    """Sends in the deployment's language (LANGUAGE_CODE), as the alert's stored message is."""
    sender = SENDERS.get(channel)
    if sender is None:
        return DeliveryOutcome(False, 0, error=f"Unknown channel {channel!r}.")
    with translation.override(settings.LANGUAGE_CODE):
        return sender(alert)
