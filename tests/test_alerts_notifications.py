"""Notifications: sent only after commit, every attempt recorded, failures never break ingestion
and are retried later. Webhooks go to real HTTP servers on 127.0.0.1; mail to the locmem backend."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts.models import AlertDelivery, BudgetAlert, DeliveryAttempt, DeliveryStatus
from alerts.notifications import webhook_payload
from alerts.services import alert_deliveries_retry_due
from ingest.services import usage_record, usage_record_batch
from tests.alert_helpers import WebhookReceiver, refused_url, set_budget
from usage.models import UsageLog
from usage.services import UsageRecordInput

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    with WebhookReceiver() as server:
        settings.AICOST_ALERT_WEBHOOK_URL = server.url
        yield server


@pytest.fixture
def mail_to(settings):
    settings.AICOST_ALERT_EMAIL_TO = ["ops@example.com", "finance@example.com"]
    return settings.AICOST_ALERT_EMAIL_TO


def cross_half_budget(capture) -> None:
    set_budget("gpt-4o", "10")
    with capture(execute=True):
        usage_record(model_name="gpt-4o", cost=Decimal("6"))


def test_an_alert_reaches_email_and_webhook_after_commit(receiver, mail_to, django_capture_on_commit_callbacks):
    cross_half_budget(django_capture_on_commit_callbacks)
    alert = BudgetAlert.objects.get()
    (message,) = mail.outbox
    assert message.to == mail_to
    assert message.subject == "[aicost] INFO: Model monthly budget for gpt-4o"
    assert alert.message in message.body
    (payload,) = receiver.payloads
    assert payload["text"].endswith(alert.message)
    assert payload["blocks"][0]["type"] == "header"
    assert {"type": "mrkdwn", "text": "*Threshold*\n50%"} in payload["blocks"][2]["fields"]
    deliveries = AlertDelivery.objects.order_by("channel")
    assert [(d.channel, d.status, d.attempts, d.last_status_code) for d in deliveries] == [
        ("email", "sent", 1, None),
        ("webhook", "sent", 1, 200),
    ]
    assert DeliveryAttempt.objects.filter(succeeded=True).count() == 2


def test_nothing_is_sent_while_the_ingestion_transaction_is_open(receiver, mail_to, django_capture_on_commit_callbacks):
    set_budget("gpt-4o", "10")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        usage_record(model_name="gpt-4o", cost=Decimal("6"))
    assert len(callbacks) == 1
    assert mail.outbox == []
    assert receiver.payloads == []
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"pending"}


def test_no_channels_configured_means_no_deliveries(django_capture_on_commit_callbacks):
    cross_half_budget(django_capture_on_commit_callbacks)
    assert BudgetAlert.objects.count() == 1
    assert not AlertDelivery.objects.exists()


def test_a_webhook_answering_500_does_not_break_ingestion_and_is_retried(receiver, django_capture_on_commit_callbacks):
    receiver.status = 500
    cross_half_budget(django_capture_on_commit_callbacks)
    assert UsageLog.objects.count() == 1
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=50)  # first backoff: 60 s
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.succeeded, attempt.status_code) == (False, 500)

    assert alert_deliveries_retry_due() == []  # not due yet
    receiver.status = 200
    (retried,) = alert_deliveries_retry_due(now=timezone.now() + timedelta(minutes=2))
    assert (retried.status, retried.attempts, retried.last_status_code) == ("sent", 2, 200)
    assert len(receiver.payloads) == 2
    assert list(DeliveryAttempt.objects.order_by("number").values_list("number", "succeeded")) == [
        (1, False),
        (2, True),
    ]


def test_a_refused_connection_is_recorded_and_the_cron_command_delivers_later(
    settings, django_capture_on_commit_callbacks
):
    settings.AICOST_ALERT_WEBHOOK_URL = refused_url()
    cross_half_budget(django_capture_on_commit_callbacks)
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert "refused" in delivery.last_error.lower()

    with WebhookReceiver() as receiver:
        settings.AICOST_ALERT_WEBHOOK_URL = receiver.url
        AlertDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
        call_command("alerts_deliver")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(receiver.payloads) == 1


def test_backoff_doubles_and_gives_up_after_the_last_attempt(settings, django_capture_on_commit_callbacks):
    settings.AICOST_ALERT_WEBHOOK_URL = refused_url()
    settings.AICOST_ALERT_DELIVERY_MAX_ATTEMPTS = 3
    settings.AICOST_ALERT_RETRY_BACKOFF_SECONDS = 60
    cross_half_budget(django_capture_on_commit_callbacks)
    delivery = AlertDelivery.objects.get()
    first_due = delivery.next_attempt_at
    (delivery,) = alert_deliveries_retry_due(now=first_due)
    assert delivery.next_attempt_at - first_due == timedelta(seconds=120)
    (delivery,) = alert_deliveries_retry_due(now=delivery.next_attempt_at)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert alert_deliveries_retry_due(now=timezone.now() + timedelta(days=1)) == []


def test_a_failing_mail_server_is_recorded_and_ingestion_succeeds(
    settings, mail_to, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(refused_url().rsplit(":", 1)[1].split("/")[0])
    cross_half_budget(django_capture_on_commit_callbacks)
    assert UsageLog.objects.count() == 1
    delivery = AlertDelivery.objects.get()
    assert (delivery.channel, delivery.status, delivery.attempts) == ("email", "pending", 1)
    assert "ConnectionRefusedError" in delivery.last_error


def test_a_sender_crash_after_commit_is_contained_and_the_lease_lets_cron_retry(
    receiver, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(**kwargs):
        raise RuntimeError("bug in a sender")

    monkeypatch.setattr("alerts.services.deliver", broken)
    cross_half_budget(django_capture_on_commit_callbacks)  # must not raise
    assert UsageLog.objects.count() == 1
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    monkeypatch.undo()
    assert alert_deliveries_retry_due() == []  # still leased to the crashed sender
    (delivery,) = alert_deliveries_retry_due(now=timezone.now() + timedelta(minutes=5))
    assert delivery.status == "sent"
    assert len(receiver.payloads) == 1


def test_webhook_payload_is_slack_compatible():
    alert = BudgetAlert(
        pk=7,
        model_name="*",
        alert_type="global_budget",
        alert_level="critical",
        current_cost=Decimal("101"),
        budget_limit=Decimal("100"),
        usage_percentage=Decimal("101.00"),
        threshold_percent=100,
        period_start=timezone.localdate().replace(day=1),
        message="All models together have used 101.00% of the monthly budget.",
    )
    payload = webhook_payload(alert)
    assert payload["text"].startswith(":rotating_light: [aicost] CRITICAL: Global monthly budget for all models")
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "section", "context"]
    assert payload["attachments"][0]["color"] == "#D00000"


def test_a_batch_crossing_several_thresholds_sends_one_message(receiver, django_capture_on_commit_callbacks):
    set_budget("gpt-4o", "10")
    with django_capture_on_commit_callbacks(execute=True):
        usage_record(model_name="gpt-4o", cost=Decimal("12"))
    assert BudgetAlert.objects.count() == 3
    (payload,) = receiver.payloads
    assert "CRITICAL" in payload["text"]
    assert AlertDelivery.objects.get().alert.threshold_percent == 100


def test_one_failure_per_channel_per_run_so_a_dead_webhook_costs_one_timeout(
    settings, django_capture_on_commit_callbacks
):
    settings.AICOST_ALERT_WEBHOOK_URL = refused_url()
    set_budget("gpt-4o", "10")
    set_budget("gpt-4o-mini", "10")
    with django_capture_on_commit_callbacks(execute=True):
        usage_record_batch(
            records=[
                UsageRecordInput(model_name="gpt-4o", cost=Decimal("6")),
                UsageRecordInput(model_name="gpt-4o-mini", cost=Decimal("6")),
            ]
        )
    assert sorted(AlertDelivery.objects.values_list("attempts", flat=True)) == [0, 1]
    assert DeliveryAttempt.objects.count() == 1
    with WebhookReceiver() as receiver:
        settings.AICOST_ALERT_WEBHOOK_URL = receiver.url
        sent = alert_deliveries_retry_due(now=timezone.now() + timedelta(minutes=2))
    assert [d.status for d in sent] == ["sent", "sent"]
    assert len(receiver.payloads) == 2
