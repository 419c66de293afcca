"""System checks of the alert settings: a typo in a threshold must stop a deploy, not silence alerts."""

from django.conf import settings
from django.core.checks import Error, Warning

from alerts import config


def check_alert_thresholds(app_configs=None, **kwargs) -> list:
    messages = []
    for name in config.THRESHOLD_SETTINGS:
        try:
            config.parse_thresholds(getattr(settings, name))
        except config.ThresholdSyntaxError as exc:
            messages.append(
                Error(
                    f"{name} is not valid: {exc}",
                    hint='Use comma-separated percent:level pairs, e.g. "50:info,80:warning,100:critical".',
                    id="alerts.E001",
                )
            )
    try:
        config.spend_spike_min_cost()
    except config.ThresholdSyntaxError as exc:
        messages.append(Error(str(exc), hint='Use a decimal amount, e.g. "1.00".', id="alerts.E002"))
    return messages


def check_alert_channels(app_configs=None, **kwargs) -> list:
    messages = []
    problem = config.webhook_url_problem(config.webhook_url())
    if problem:
        messages.append(
            Error(
                f"AICOST_ALERT_WEBHOOK_URL is not usable: {problem}.",
                hint="Set the full webhook URL, e.g. https://hooks.slack.com/services/..., or leave it empty.",
                id="alerts.E003",
            )
        )
    for address in config.email_recipients():
        if "@" not in address:
            messages.append(
                Warning(
                    f"AICOST_ALERT_EMAIL_TO contains {address!r}, which is not an e-mail address.",
                    hint="A comma-separated list of addresses, e.g. ops@example.com,finance@example.com.",
                    id="alerts.W001",
                )
            )
    return messages
