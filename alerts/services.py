"""Writes of alerts: thresholds crossed become alert rows, once per budget, period and threshold.

Evaluation runs inside the ingestion transaction, so it stays at a few set-based queries per batch.
Duplicates are prevented by the unique constraint (INSERT ... ON CONFLICT DO NOTHING), which also
tells which rows this transaction created: only those get notifications, queued as delivery rows
in the same transaction and sent after commit.
"""

import logging
import time
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from alerts import config
from alerts.forecast import Forecast
from alerts.models import (
    AlertDelivery,
    AlertLevel,
    AlertStatus,
    AlertType,
    BudgetAlert,
    DeliveryAttempt,
    DeliveryChannel,
    DeliveryStatus,
    GlobalBudget,
)
from alerts.notifications import DeliveryOutcome, deliver
from alerts.selectors import (
    ActivityWindows,
    BudgetStatus,
    ModelActivity,
    WatchedBudget,
    activity_windows,
    budget_forecasts,
    budgets_to_evaluate,
    capped_percent,
    dimension_budgets_to_evaluate,
    explicit_dimension_budgets,
    model_activity,
)
from core.money import money_display, percent_of
from pricing.selectors import model_pricings_budgeted, reporting_currency

logger = logging.getLogger("aicost.alerts")

# --- Building candidate alerts (pure functions of the figures) ------------------------------------


def _stored_text(message: str, **values) -> str:
    """An alert's message in the deployment's language (LANGUAGE_CODE), whichever request raised it:
    it is stored, listed and sent as it is."""
    with translation.override(settings.LANGUAGE_CODE):
        text = translation.gettext(message)
        return text % values if values else text


def _budget_details(status: BudgetStatus) -> dict:
    """The figures a budget alert was raised on: money in the reporting currency (`currency`), and the
    budget as stated with the rate it was converted at."""
    return {
        "spent": str(status.spent),
        "budget": str(status.budget_reporting),
        "currency": status.currency,
        "budget_amount": str(status.budget),
        "budget_currency": status.budget_currency,
        "exchange_rate": None if status.rate is None else str(status.rate),
        "unconverted_calls": status.unconverted_calls,
    }


BUDGET_MESSAGES = {
    AlertType.GLOBAL_BUDGET: gettext_noop(
        "%(label)s have used %(used)s%% of the global monthly budget (%(spent)s of %(budget)s "
        "%(currency)s in the month from %(start)s); the %(threshold)s%% threshold is crossed."
    ),
    AlertType.MODEL_BUDGET: gettext_noop(
        "%(label)s has used %(used)s%% of its monthly budget (%(spent)s of %(budget)s "
        "%(currency)s in the month from %(start)s); the %(threshold)s%% threshold is crossed."
    ),
    AlertType.USER_BUDGET: gettext_noop(
        "User %(label)s has used %(used)s%% of their monthly budget (%(spent)s of %(budget)s "
        "%(currency)s in the month from %(start)s); the %(threshold)s%% threshold is crossed."
    ),
    AlertType.PURPOSE_BUDGET: gettext_noop(
        "Calls for %(label)s have used %(used)s%% of the purpose's monthly budget (%(spent)s of %(budget)s "
        "%(currency)s in the month from %(start)s); the %(threshold)s%% threshold is crossed."
    ),
}


def _budget_message(*, alert_type: str, label: str, used, status: BudgetStatus, threshold) -> str:
    text = _stored_text(
        BUDGET_MESSAGES[alert_type],
        label=_stored_text(label) if alert_type == AlertType.GLOBAL_BUDGET else label,
        used=used,
        spent=money_display(status.spent),  # Shown: rounded once, as every figure a person reads.
        budget=money_display(status.budget_reporting),
        currency=status.currency,
        start=status.period_start,
        threshold=threshold.percent,
    )
    return text + _conversion_note(status)


def _conversion_note(status: BudgetStatus) -> str:
    text = ""
    if status.budget_currency != status.currency:
        text += " " + _stored_text(
            gettext_noop(
                "The budget is %(amount)s %(budget_currency)s, at %(rate)s %(currency)s per %(budget_currency)s."
            ),
            amount=money_display(status.budget),
            budget_currency=status.budget_currency,
            rate=format(status.rate.normalize(), "f"),  # 7.1, never 7.100000000000000000 or 7E+1.
            currency=status.currency,
        )
    if status.unconverted_calls:
        text += " " + _stored_text(
            gettext_noop("%(count)s calls of the month have no exchange rate yet and are not counted."),
            count=status.unconverted_calls,
        )
    return text


def _budget_alerts(
    *, alert_type: str, model_name: str, label: str, status: BudgetStatus, now: datetime
) -> list[BudgetAlert]:
    """The thresholds this budget crossed, compared in the reporting currency. A budget that cannot be
    converted (no exchange rate in force from its currency) raises nothing: different currencies are
    never compared (budget/check and the cost page say it is not convertible)."""
    if status.budget_reporting is None:
        return []
    used = capped_percent(status.spent, status.budget_reporting)
    return [
        BudgetAlert(
            model_name=model_name,
            alert_type=alert_type,
            alert_level=threshold.level,
            current_cost=status.spent,
            budget_limit=status.budget_reporting,
            usage_percentage=used,
            threshold_percent=threshold.percent,
            period_start=status.period_start,
            details=_budget_details(status),
            message=_budget_message(alert_type=alert_type, label=label, used=used, status=status, threshold=threshold),
            created_at=now,
        )
        for threshold in config.budget_thresholds()
        if status.spent > 0 and used >= threshold.percent
    ]


def _watched_budgets(
    *, model_names: Collection[str], user_ids: Collection[int], purposes: Collection[str], now, include_global: bool
) -> list[WatchedBudget]:
    watched = budgets_to_evaluate(model_names=model_names, now=now, include_global=include_global)
    return watched + dimension_budgets_to_evaluate(user_ids=user_ids, purposes=purposes, now=now)


def _threshold_alerts(watched: list[WatchedBudget], now: datetime) -> list[BudgetAlert]:
    alerts: list[BudgetAlert] = []
    for budget in watched:
        alerts += _budget_alerts(
            alert_type=budget.alert_type,
            model_name=budget.scope,
            label=budget.label,
            status=budget.status,
            now=now,
        )
    return alerts


FORECAST_THRESHOLD = 100  # A forecast alert: the projection reaches 100% of the budget.
FORECAST_SCOPES = {
    AlertType.GLOBAL_BUDGET: gettext_noop("All models together"),
    AlertType.MODEL_BUDGET: gettext_noop("Model %(label)s"),
    AlertType.USER_BUDGET: gettext_noop("User %(label)s"),
    AlertType.PURPOSE_BUDGET: gettext_noop("Purpose %(label)s"),
}


def _forecast_alert(*, budget: WatchedBudget, forecast: Forecast, now: datetime) -> BudgetAlert | None:
    """ "Forecast to exceed": the month's projected spend reaches a comparable budget that the spend so
    far has not reached (the thresholds say that), once per budget and month."""
    status = budget.status
    if status.budget_reporting is None or status.spent >= status.budget_reporting:
        return None
    if forecast.reaches_on is None or forecast.projected < status.budget_reporting:
        return None
    if forecast.history_days < 1:  # Calls today only: too little to tell a pace from.
        return None
    projected_percent = capped_percent(forecast.projected, status.budget_reporting)
    scope = _stored_text(FORECAST_SCOPES[budget.alert_type], label=budget.label)
    message = _stored_text(
        gettext_noop(
            "%(scope)s: at the current pace (%(pace)s %(currency)s a day) the month from %(start)s ends at "
            "%(projected)s %(currency)s, %(percent)s%% of the monthly budget of %(budget)s %(currency)s; "
            "the budget is reached on %(day)s."
        ),
        scope=scope,
        pace=money_display(forecast.daily_pace),
        currency=status.currency,
        start=status.period_start,
        projected=money_display(forecast.projected),
        percent=projected_percent,
        budget=money_display(status.budget_reporting),
        day=forecast.reaches_on,
    )
    details = _budget_details(status) | {
        "projected_month_end": str(money_display(forecast.projected)),
        "daily_pace": str(money_display(forecast.daily_pace)),
        "reaches_on": forecast.reaches_on.isoformat() if forecast.reaches_on else None,
        "method": forecast.method,
        "budget_type": budget.alert_type,
        "scope": budget.scope,
    }
    return BudgetAlert(
        model_name=budget.key,
        alert_type=AlertType.FORECAST,
        alert_level=AlertLevel.WARNING,
        current_cost=status.spent,
        budget_limit=status.budget_reporting,
        usage_percentage=projected_percent,
        threshold_percent=FORECAST_THRESHOLD,
        period_start=status.period_start,
        details=details,
        message=message + _conversion_note(status),
        created_at=now,
    )


def _forecast_alerts(watched: list[WatchedBudget], now: datetime) -> list[BudgetAlert]:
    comparable = [budget for budget in watched if budget.status.budget_reporting is not None]
    forecasts = budget_forecasts(watched=comparable, now=now)
    alerts = []
    for budget in comparable:
        alert = _forecast_alert(budget=budget, forecast=forecasts[budget.key], now=now)
        if alert is not None:
            alerts.append(alert)
    return alerts


def _error_rate_alerts(*, model_name: str, activity: ModelActivity, windows: ActivityWindows, now: datetime):
    calls, failed = activity.calls_in_window, activity.failed_in_window
    if calls < max(settings.AICOST_ERROR_RATE_MIN_CALLS, 1):
        return []
    rate = percent_of(Decimal(failed), Decimal(calls))
    return [
        BudgetAlert(
            model_name=model_name,
            alert_type=AlertType.ERROR_RATE,
            alert_level=threshold.level,
            current_cost=activity.cost_today,
            budget_limit=None,
            usage_percentage=rate,
            threshold_percent=threshold.percent,
            period_start=windows.day,
            details={"calls": calls, "failed_calls": failed, "window_start": windows.window_start.isoformat()},
            message=_stored_text(
                gettext_noop(
                    "%(model)s: %(rate)s%% of calls failed since %(start)s UTC (%(failed)s of %(calls)s); "
                    "the %(threshold)s%% error-rate threshold is crossed."
                ),
                model=model_name,
                rate=rate,
                start=f"{windows.window_start:%Y-%m-%d %H:%M}",
                failed=failed,
                calls=calls,
                threshold=threshold.percent,
            ),
            created_at=now,
        )
        for threshold in config.error_rate_thresholds()
        if rate >= threshold.percent
    ]


def _spend_spike_alerts(*, model_name: str, activity: ModelActivity, windows: ActivityWindows, now: datetime):
    if activity.cost_trailing <= 0 or activity.cost_today < config.spend_spike_min_cost():
        return []  # No baseline to compare with, or too little money to matter.
    average = money_display(activity.cost_trailing / windows.trailing_days)
    reporting = reporting_currency()  # Spikes compare reporting costs (alerts.selectors.model_activity).
    ratio = capped_percent(activity.cost_today, average)
    return [
        BudgetAlert(
            model_name=model_name,
            alert_type=AlertType.SPEND_SPIKE,
            alert_level=threshold.level,
            current_cost=activity.cost_today,
            budget_limit=average,
            usage_percentage=ratio,
            threshold_percent=threshold.percent,
            period_start=windows.day,
            details={
                "cost_today": str(activity.cost_today),
                "trailing_daily_average": str(average),
                "trailing_days": windows.trailing_days,
                "currency": reporting,
            },
            message=_stored_text(
                gettext_noop(
                    "%(model)s: today's cost %(cost)s %(currency)s is %(ratio)s%% of its trailing %(days)s-day "
                    "daily average (%(average)s %(currency)s); the %(threshold)s%% spike threshold is crossed."
                ),
                model=model_name,
                cost=money_display(activity.cost_today),
                currency=reporting,
                ratio=ratio,
                days=windows.trailing_days,
                average=average,
                threshold=threshold.percent,
            ),
            created_at=now,
        )
        for threshold in config.spend_spike_thresholds()
        if ratio >= threshold.percent
    ]


def _anomaly_alerts(*, model_names: Collection[str] | None, now: datetime) -> list[BudgetAlert]:
    if not (config.error_rate_thresholds() or config.spend_spike_thresholds()):
        return []
    windows = activity_windows(now=now)
    alerts: list[BudgetAlert] = []
    for model_name, activity in sorted(model_activity(windows=windows, model_names=model_names).items()):
        alerts += _error_rate_alerts(model_name=model_name, activity=activity, windows=windows, now=now)
        alerts += _spend_spike_alerts(model_name=model_name, activity=activity, windows=windows, now=now)
    return alerts


# --- Storing them exactly once --------------------------------------------------------------------

INSERT_FIELDS = [
    "model_name",
    "alert_type",
    "alert_level",
    "current_cost",
    "budget_limit",
    "usage_percentage",
    "message",
    "is_resolved",
    "status",
    "period_start",
    "threshold_percent",
    "details",
    "created_at",
]


def _alert_key(alert: BudgetAlert) -> tuple[str, str, int]:
    return (alert.alert_type, alert.model_name, alert.threshold_percent)


def _alerts_insert_new(candidates: Iterable[BudgetAlert]) -> list[BudgetAlert]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: the returned rows are the ones this call created.
    Rows are sent in key order so concurrent transactions take the key locks in the same order."""
    rows = sorted(candidates, key=_alert_key)
    if not rows:
        return []
    meta = BudgetAlert._meta
    fields = [meta.get_field(name) for name in INSERT_FIELDS]
    quote = connection.ops.quote_name
    params: list = []
    for alert in rows:
        params += [field.get_db_prep_save(getattr(alert, field.attname), connection) for field in fields]
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Identifiers come from model metadata, values are bound parameters.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT DO NOTHING RETURNING id, alert_type, model_name, threshold_percent"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        created = {(alert_type, model, threshold): pk for pk, alert_type, model, threshold in cursor.fetchall()}
    new_alerts = []
    for alert in rows:
        pk = created.get(_alert_key(alert))
        if pk is not None:
            alert.pk = pk
            alert._state.adding = False
            new_alerts.append(alert)
    return new_alerts


def _configured_channels() -> list[str]:
    channels = []
    if config.email_recipients():
        channels.append(DeliveryChannel.EMAIL)
    if config.webhook_url():
        channels.append(DeliveryChannel.WEBHOOK)
    return channels


def _worth_notifying(alerts: list[BudgetAlert]) -> list[BudgetAlert]:
    """One message per budget (or model health) and period: when one batch crosses 50%, 80% and 100%
    at once, only the 100% alert is sent; the others are still stored and listed."""
    highest: dict[tuple, BudgetAlert] = {}
    for alert in alerts:
        key = (alert.alert_type, alert.model_name, alert.period_start)
        if key not in highest or alert.threshold_percent > highest[key].threshold_percent:
            highest[key] = alert
    return sorted(highest.values(), key=_alert_key)


def _deliveries_queue(*, alerts: list[BudgetAlert], now: datetime) -> None:
    """Outbox rows in the alert's transaction; the attempt itself runs only after commit."""
    channels = _configured_channels()
    if not alerts or not channels:
        return
    deliveries = AlertDelivery.objects.bulk_create(
        [
            AlertDelivery(alert=alert, channel=channel, next_attempt_at=now)
            for alert in _worth_notifying(alerts)
            for channel in channels
        ]
    )
    delivery_ids = [delivery.pk for delivery in deliveries]
    # robust: a failing callback is logged and never turns a committed ingestion into an error.
    transaction.on_commit(partial(alert_deliveries_send, delivery_ids=delivery_ids), robust=True)


def _alerts_store(*, candidates: list[BudgetAlert], now: datetime) -> list[BudgetAlert]:
    created = _alerts_insert_new(candidates)
    _deliveries_queue(alerts=created, now=now)
    for alert in created:
        logger.warning("Alert raised: %s", alert.message)
    return created


@transaction.atomic(savepoint=False)  # Inside ingestion: no savepoint round trips per batch.
def budget_alerts_evaluate(
    *,
    model_names: Collection[str],
    now: datetime,
    user_ids: Collection[int] = (),
    purposes: Collection[str] = (),
    include_global: bool = True,
    include_anomalies: bool = True,
) -> list[BudgetAlert]:
    """Raise the alerts the given models' figures call for, and return the ones newly created.

    Called by ingestion inside its transaction with the batch's models, users and purposes: one query
    for their budgets, one for the global budget, one for the users' and purposes' budgets (and the
    month's rows of those that have one), one over the hourly rollups for error rate and spend spikes,
    the forecasts of the budgets due (alerts.forecast), and one INSERT only when some threshold is
    crossed. Idempotent and safe under concurrency (unique key)."""
    watched = _watched_budgets(
        model_names=model_names, user_ids=user_ids, purposes=purposes, now=now, include_global=include_global
    )
    candidates = _threshold_alerts(watched, now)
    if include_anomalies:
        interval = settings.AICOST_ALERT_ANOMALY_INGEST_INTERVAL_SECONDS
        due = _anomaly_checks_due(model_names, interval=interval)
        if due:
            candidates += _anomaly_alerts(model_names=due, now=now)
        # Forecasts read four weeks of days: like the anomalies, at most once per interval per budget.
        forecast_due = set(_anomaly_checks_due([budget.key for budget in watched], interval=interval))
        candidates += _forecast_alerts([budget for budget in watched if budget.key in forecast_due], now)
    return _alerts_store(candidates=candidates, now=now)


_anomalies_checked_at: dict[str, float] = {}


def _anomaly_checks_due(model_names: Collection[str], *, interval: float) -> list[str]:
    """Error rate and spikes are trends: on ingestion each process looks at a model at most once per
    `interval` seconds (the rollup scan is the dearest part of evaluation); cron looks at all of them."""
    if interval <= 0:
        return sorted(model_names)
    clock = time.monotonic()
    due = sorted(name for name in model_names if clock - _anomalies_checked_at.get(name, -interval) >= interval)
    for name in due:
        _anomalies_checked_at[name] = clock
    return due


@transaction.atomic
def alerts_evaluate_all(*, now: datetime) -> list[BudgetAlert]:
    """Evaluate every budget (the users with a budget of their own: the default user budget is evaluated
    at ingestion for each batch's users), the forecasts, and every model with recent usage (the cron path)."""
    budgeted = [pricing.model_name for pricing in model_pricings_budgeted()]
    user_ids, purposes = explicit_dimension_budgets()
    watched = _watched_budgets(model_names=budgeted, user_ids=user_ids, purposes=purposes, now=now, include_global=True)
    candidates = _threshold_alerts(watched, now)
    candidates += _anomaly_alerts(model_names=None, now=now)
    candidates += _forecast_alerts(watched, now)
    return _alerts_store(candidates=candidates, now=now)


# --- Lifecycle --------------------------------------------------------------------------------------


@transaction.atomic
def budget_alerts_acknowledge(*, alert_ids: Collection[int], user: AbstractBaseUser | None = None) -> int:
    """open -> acknowledged. Acknowledged and resolved alerts are left as they are."""
    return BudgetAlert.objects.filter(pk__in=alert_ids, status=AlertStatus.OPEN).update(
        status=AlertStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
    )


@transaction.atomic
def budget_alerts_resolve(*, alert_ids: Collection[int], user: AbstractBaseUser | None = None) -> int:
    """open or acknowledged -> resolved. The row stays, so the same threshold does not fire again
    in the same period (the unique key); a higher threshold is a new row and does fire."""
    return BudgetAlert.objects.filter(pk__in=alert_ids, is_resolved=False).update(
        is_resolved=True, status=AlertStatus.RESOLVED, resolved_at=timezone.now(), resolved_by=user
    )


@transaction.atomic
def global_budget_set(*, monthly_budget: Decimal | None, currency: str | None = None) -> GlobalBudget:
    budget, _created = GlobalBudget.objects.select_for_update().get_or_create(
        pk=GlobalBudget.SINGLETON_ID, defaults={"currency": settings.AICOST_CURRENCY}
    )
    budget.monthly_budget = monthly_budget
    if currency:
        budget.currency = currency
    budget.full_clean()
    budget.save()
    return budget


# --- Delivery ---------------------------------------------------------------------------------------


def delivery_backoff(attempts: int) -> timedelta:
    """Wait after the n-th failed attempt: base, 2x base, 4x base ... capped at six hours."""
    base = max(settings.AICOST_ALERT_RETRY_BACKOFF_SECONDS, 1)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 6 * 3600))


def _lease() -> timedelta:
    return timedelta(seconds=2 * settings.AICOST_ALERT_DELIVERY_TIMEOUT + 60)


def _delivery_claim(*, delivery_id: int, now: datetime) -> AlertDelivery | None:
    """Take a due delivery by moving its due time past the attempt (a lease): two senders never
    attempt the same delivery at once, and a sender that dies leaves it due again later."""
    claimed = AlertDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + _lease())
    if not claimed:
        return None
    return AlertDelivery.objects.select_related("alert").get(pk=delivery_id)


@transaction.atomic
def _delivery_record(*, delivery: AlertDelivery, outcome: DeliveryOutcome, now: datetime) -> AlertDelivery:
    delivery.attempts += 1
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        succeeded=outcome.succeeded,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        attempted_at=now,
    )
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SENT
        delivery.delivered_at = timezone.now()
    elif delivery.attempts >= settings.AICOST_ALERT_DELIVERY_MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.next_attempt_at = now + delivery_backoff(delivery.attempts)
    delivery.save(
        update_fields=["attempts", "status", "last_status_code", "last_error", "delivered_at", "next_attempt_at"]
    )
    return delivery


def alert_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> AlertDelivery | None:
    """Try one due delivery once and record the attempt. Returns None if it was not due (or taken)."""
    now = now or timezone.now()
    delivery = _delivery_claim(delivery_id=delivery_id, now=now)
    if delivery is None:
        return None
    outcome = deliver(channel=delivery.channel, alert=delivery.alert)
    if not outcome.succeeded:
        logger.warning("Alert %s via %s failed: %s", delivery.alert_id, delivery.channel, outcome.describe())
    return _delivery_record(delivery=delivery, outcome=outcome, now=now)


def alert_deliveries_send(*, delivery_ids: Collection[int], now: datetime | None = None) -> list[AlertDelivery]:
    """Attempt the given deliveries; never raises (it runs after the ingestion commit).

    After one failure on a channel, the rest of that channel's deliveries are left due for the retry
    command, so a hanging webhook costs one timeout here, not one per alert."""
    channel_of = dict(AlertDelivery.objects.filter(pk__in=delivery_ids).values_list("pk", "channel"))
    failed_channels: set[str] = set()
    attempted = []
    for delivery_id in delivery_ids:
        if channel_of.get(delivery_id) in failed_channels:
            continue
        try:
            delivery = alert_delivery_attempt(delivery_id=delivery_id, now=now)
        except Exception:
            logger.exception("Delivery %s could not be attempted; the retry command will try again.", delivery_id)
            failed_channels.add(channel_of.get(delivery_id))
            continue
        if delivery is None:
            continue
        attempted.append(delivery)
        if delivery.status != DeliveryStatus.SENT:
            failed_channels.add(delivery.channel)
    return attempted


def alert_deliveries_retry_due(*, now: datetime | None = None, limit: int = 100) -> list[AlertDelivery]:
    """Attempt the pending deliveries that are due (the cron path, with backoff between attempts)."""
    now = now or timezone.now()
    due_ids = list(
        AlertDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    return alert_deliveries_send(delivery_ids=due_ids, now=now)


@transaction.atomic
def alert_deliveries_requeue(*, delivery_ids: Collection[int]) -> int:
    """Make deliveries due now again, also ones that gave up (admin action)."""
    return (
        AlertDelivery.objects.filter(pk__in=delivery_ids)
        .exclude(status=DeliveryStatus.SENT)
        .update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    )
