from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.money import COST_DECIMAL_PLACES, COST_MAX_DIGITS
from usage.records import COMPLETION_PARTS, PROMPT_PARTS, TOKEN_FIELDS
from usage.rollup_sums import ROLLUP_SUMS


class CostSource(models.TextChoices):
    COMPUTED = "computed", _("Computed from the price in force")
    PROVIDER = "provider", _("Reported by the caller (provider's figure)")
    UNPRICED = "unpriced", _("Unpriced: unknown or disabled model")


def sum_of(columns: tuple[str, ...]) -> models.F:
    """The columns added up, as an expression (the parts-within-whole CHECKs)."""
    total = models.F(columns[0])
    for column in columns[1:]:
        total = total + models.F(column)
    return total


class UsageLog(models.Model):
    """One LLM call as the client reported it, with the cost fixed at ingestion.

    model_name is the model the call is counted under: the priced model's name when the name sent
    matched one (an alias, prefix or expression: pricing.matching), else the name as sent;
    sent_model_name keeps the name as sent. Counters, rollups and budgets key on model_name."""

    model_name = models.CharField(max_length=100, db_index=True, verbose_name=_("model name"))
    decision_id = models.CharField(max_length=100, blank=True, default="", db_index=True, verbose_name=_("decision id"))
    user_id = models.IntegerField(null=True, blank=True, verbose_name=_("user id"))
    # Never negative: the table's CHECK constraints below (named, so the schema guard knows them).
    prompt_tokens = models.IntegerField(default=0, verbose_name=_("prompt tokens"))
    completion_tokens = models.IntegerField(default=0, verbose_name=_("completion tokens"))
    cached_tokens = models.IntegerField(
        default=0, help_text=_("Prompt tokens served from the provider's cache."), verbose_name=_("cached tokens")
    )
    reasoning_tokens = models.IntegerField(
        default=0, help_text=_("Completion tokens spent on reasoning."), verbose_name=_("reasoning tokens")
    )
    # The other kinds with a price of their own, each part of prompt or completion tokens (tokens.md).
    # DEFAULT 0 in the database as well: a writer that predates them (raw SQL, a restore) stores none.
    cache_write_5m_tokens = models.IntegerField(
        default=0,
        db_default=0,
        help_text=_("Prompt tokens written to a 5-minute cache (or a cache write without a duration)."),
        verbose_name=_("cache write 5m tokens"),
    )
    cache_write_1h_tokens = models.IntegerField(
        default=0,
        db_default=0,
        help_text=_("Prompt tokens written to a 1-hour cache."),
        verbose_name=_("cache write 1h tokens"),
    )
    input_audio_tokens = models.IntegerField(
        default=0, db_default=0, help_text=_("Prompt tokens that are audio."), verbose_name=_("input audio tokens")
    )
    output_audio_tokens = models.IntegerField(
        default=0, db_default=0, help_text=_("Completion tokens that are audio."), verbose_name=_("output audio tokens")
    )
    output_image_tokens = models.IntegerField(
        default=0,
        db_default=0,
        help_text=_("Completion tokens that are images."),
        verbose_name=_("output image tokens"),
    )
    cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text=_("Empty when the call could not be priced."),
        verbose_name=_("cost"),
    )
    cost_source = models.CharField(max_length=10, choices=CostSource.choices, verbose_name=_("cost source"))
    price_version = models.ForeignKey(
        "pricing.ModelPriceVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        help_text=_("The price the cost was computed from."),
        verbose_name=_("price version"),
    )
    reporting_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS,
        decimal_places=COST_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text=_("The cost in the reporting currency, at the rate in force at the call's timestamp."),
        verbose_name=_("reporting cost"),
    )
    exchange_rate = models.ForeignKey(
        "pricing.ExchangeRate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        help_text=_("The rate the reporting cost was converted at (empty: no conversion was needed)."),
        verbose_name=_("exchange rate"),
    )
    unconverted = models.BooleanField(
        default=False,
        db_default=False,
        help_text=_("Priced, but no exchange rate into the reporting currency was in force at its timestamp."),
        verbose_name=_("unconverted"),
    )
    response_time = models.FloatField(null=True, blank=True, help_text=_("Seconds."), verbose_name=_("response time"))
    success = models.BooleanField(default=True, verbose_name=_("success"))
    error_message = models.TextField(blank=True, default="", verbose_name=_("error message"))
    purpose = models.CharField(max_length=100, blank=True, default="", verbose_name=_("purpose"))
    timestamp = models.DateTimeField(db_index=True, verbose_name=_("timestamp"))
    sent_model_name = models.CharField(
        max_length=100,
        blank=True,
        default="",
        db_default="",  # Rows written by other means (raw SQL, a restore) get it too.
        help_text=_("The model name as the client sent it (empty: rows stored before it was kept; then model_name)."),
        verbose_name=_("sent model name"),
    )
    # PROTECT: a key is revoked, never deleted (the admin refuses), so its calls keep grouping under it.
    # No index: breakdowns scan their window's rows anyway.
    api_key = models.ForeignKey(
        "ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        help_text=_("The API key that sent the call (empty: recorded from Python, or by a staff login)."),
        verbose_name=_("API key"),
    )

    class Meta:
        db_table = "ai_model_usage_log"
        ordering = ["-timestamp"]
        verbose_name = _("usage log entry")
        verbose_name_plural = _("usage log")
        # Budgets per user and per purpose read the month's spend of the users and purposes of a batch:
        # index range scans of those keys' rows in the month (partial: calls without them cost nothing).
        indexes = [
            models.Index(
                fields=["user_id", "timestamp"], condition=models.Q(user_id__isnull=False), name="ai_usage_log_user_ts"
            ),
            models.Index(
                fields=["purpose", "timestamp"], condition=~models.Q(purpose=""), name="ai_usage_log_purpose_ts"
            ),
        ]
        # What usage.records refuses, refused by the database too (raw SQL, a bug, a restore). On
        # PostgreSQL a CHECK on the partitioned parent holds for every partition.
        constraints = [
            *(
                models.CheckConstraint(
                    condition=models.Q(**{f"{name}__gte": 0}), name=f"ai_model_usage_log_{name}_check"
                )
                for name in TOKEN_FIELDS
            ),
            models.CheckConstraint(
                condition=models.Q(cost__isnull=True) | models.Q(cost__gte=0), name="ai_model_usage_log_cost_check"
            ),
            models.CheckConstraint(
                condition=models.Q(response_time__isnull=True) | models.Q(response_time__gte=0),
                name="ai_model_usage_log_response_time_check",
            ),
            # Priced calls carry their reporting-currency cost, or are unconverted (no rate in force).
            models.CheckConstraint(
                condition=models.Q(cost__isnull=True, reporting_cost__isnull=True, unconverted=False)
                | models.Q(cost__isnull=False, reporting_cost__isnull=False, unconverted=False)
                | models.Q(cost__isnull=False, reporting_cost__isnull=True, unconverted=True),
                name="ai_model_usage_log_conversion_consistent",
            ),
            models.CheckConstraint(
                condition=models.Q(reporting_cost__isnull=True) | models.Q(reporting_cost__gte=0),
                name="ai_model_usage_log_reporting_cost_check",
            ),
            models.CheckConstraint(
                condition=models.Q(cached_tokens__lte=models.F("prompt_tokens")),
                name="ai_model_usage_log_cached_within_prompt",
            ),
            models.CheckConstraint(
                condition=models.Q(reasoning_tokens__lte=models.F("completion_tokens")),
                name="ai_model_usage_log_reasoning_within_completion",
            ),
            models.CheckConstraint(
                condition=models.Q(prompt_tokens__gte=sum_of(PROMPT_PARTS)),
                name="ai_model_usage_log_input_parts_within_prompt",
            ),
            models.CheckConstraint(
                condition=models.Q(completion_tokens__gte=sum_of(COMPLETION_PARTS)),
                name="ai_model_usage_log_output_parts_within_completion",
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(model)s at %(time)s") % {
            "model": self.model_name,
            "time": f"{self.timestamp:%Y-%m-%d %H:%M:%S}",
        }


class RollupSums(models.Model):
    """What a rollup row adds up: one column per sum declared in usage.rollup_sums.ROLLUP_SUMS."""

    class Meta:
        abstract = True


for _rollup_sum in ROLLUP_SUMS:
    RollupSums.add_to_class(_rollup_sum.name, _rollup_sum.type.field())


class ModelRollupSums(RollupSums):
    """Rollup sums of one model."""

    model_name = models.CharField(max_length=100, verbose_name=_("model name"))

    class Meta:
        abstract = True


# An hour row also holds its sums over the hour's first 15, 30 and 45 minutes (calls_15m, ...).
PREFIX_MINUTES = (15, 30, 45)


def prefix_column(column: str, minutes: int) -> str:
    """The column of `column`'s sum over the first `minutes` minutes of an hour row."""
    return f"{column}_{minutes}m"


class HourRollupSums(RollupSums):
    """Sums of one UTC hour, and of its first 15, 30 and 45 minutes.

    Every time zone in use today is a whole number of quarter hours from UTC, so any calendar day
    in any zone is exactly its whole hours plus, at each end, one of these prefixes (or the hour
    minus one). One row per hour instead of four 15-minute rows keeps ingestion's upkeep small."""

    class Meta:
        abstract = True


# Each declared sum's column again for each prefix (calls_15m, ...).
for _minutes in PREFIX_MINUTES:
    for _rollup_sum in ROLLUP_SUMS:
        HourRollupSums.add_to_class(prefix_column(_rollup_sum.name, _minutes), _rollup_sum.type.field())


class CompactedOrDelta(models.Model):
    """A rollup row is either compacted (at most one per key) or a delta (any number per key).

    PostgreSQL batches append deltas; compaction (usage.rollups.rollups_compact) moves them into
    the compacted rows, outside any client transaction. A reader sums every row of its range,
    whatever its kind, so its answer is exact at every moment with nothing to add. SQLite batches
    upsert compacted rows directly."""

    compacted = models.BooleanField(default=False, verbose_name=_("compacted"))

    class Meta:
        abstract = True


def compacted_key(table: str, fields: list[str]) -> models.UniqueConstraint:
    """At most one compacted row per key (deltas are exempt)."""
    return models.UniqueConstraint(fields=fields, condition=models.Q(compacted=True), name=f"{table}_compacted_key")


def rollup_indexes(prefix: str, fields: list[str]) -> list[models.Index]:
    """Range scans over both kinds of row (readers), and a short path to the deltas (compaction).
    Index names stay within Django's 30 characters."""
    return [
        models.Index(fields=fields, name=f"{prefix}_range"),
        models.Index(fields=fields, condition=models.Q(compacted=False), name=f"{prefix}_deltas"),
    ]


class UsageRollupHour(HourRollupSums, CompactedOrDelta):
    """Usage per model and UTC hour."""

    bucket = models.DateTimeField(help_text=_("Start of the hour (UTC)."), verbose_name=_("bucket"))
    model_name = models.CharField(max_length=100, verbose_name=_("model name"))

    class Meta:
        db_table = "ai_usage_rollup_1h"
        constraints = [compacted_key("ai_usage_rollup_1h", ["bucket", "model_name"])]
        indexes = rollup_indexes("ai_rollup_1h", ["bucket", "model_name"])
        verbose_name = _("usage rollup hour")
        verbose_name_plural = _("usage rollup hours")

    def __str__(self) -> str:
        return f"{self.model_name} {self.bucket:%Y-%m-%d %H:%M}"


class UsageRollupHourTotal(HourRollupSums, CompactedOrDelta):
    """Usage of all models together per UTC hour. The *Total rollups give the unfiltered daily trend
    a few rows per bucket, whatever the number of models."""

    bucket = models.DateTimeField(help_text=_("Start of the hour (UTC)."), verbose_name=_("bucket"))

    class Meta:
        db_table = "ai_usage_rollup_1h_total"
        constraints = [compacted_key("ai_usage_rollup_1h_total", ["bucket"])]
        indexes = rollup_indexes("ai_rollup_1h_total", ["bucket"])
        verbose_name = _("usage rollup hour total")
        verbose_name_plural = _("usage rollup hour totals")

    def __str__(self) -> str:
        return gettext("all models %(time)s") % {"time": f"{self.bucket:%Y-%m-%d %H:%M}"}


class UsageRollupDaily(ModelRollupSums, CompactedOrDelta):
    """Usage per model and UTC day: long ranges (stats over months) read a few rows per day."""

    day = models.DateField(help_text=_("UTC calendar day."), verbose_name=_("day"))

    class Meta:
        db_table = "ai_usage_rollup_daily"
        constraints = [compacted_key("ai_usage_rollup_daily", ["day", "model_name"])]
        indexes = rollup_indexes("ai_rollup_daily", ["day", "model_name"])
        verbose_name = _("usage rollup daily")
        verbose_name_plural = _("usage rollup dailys")

    def __str__(self) -> str:
        return f"{self.model_name} {self.day}"


class UsageRollupDailyTotal(RollupSums, CompactedOrDelta):
    """Usage of all models together per UTC day."""

    day = models.DateField(help_text=_("UTC calendar day."), verbose_name=_("day"))

    class Meta:
        db_table = "ai_usage_rollup_daily_total"
        constraints = [compacted_key("ai_usage_rollup_daily_total", ["day"])]
        indexes = rollup_indexes("ai_rollup_daily_total", ["day"])
        verbose_name = _("usage rollup daily total")
        verbose_name_plural = _("usage rollup daily totals")

    def __str__(self) -> str:
        return gettext("all models %(time)s") % {"time": self.day}


class UsageRetiredMonth(models.Model):
    """What a month of the usage log held per model when retention dropped it.

    The counters on ai_model_pricing count every call ever recorded; `usage_reconcile` adds these
    rows to what the log still holds, so it stays exact after old months are gone."""

    month = models.DateField(help_text=_("First day of the UTC month that was dropped."), verbose_name=_("month"))
    model_name = models.CharField(max_length=100, verbose_name=_("model name"))
    calls = models.BigIntegerField(verbose_name=_("calls"))
    cost = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, verbose_name=_("cost"))
    retired_at = models.DateTimeField(verbose_name=_("retired at"))

    class Meta:
        db_table = "ai_usage_retired"
        ordering = ["-month", "model_name"]
        constraints = [
            models.UniqueConstraint(fields=["month", "model_name"], name="ai_usage_retired_key"),
        ]
        verbose_name = _("usage retired month")
        verbose_name_plural = _("usage retired months")

    def __str__(self) -> str:
        return f"{self.model_name} {self.month:%Y-%m}"


class UsageLogGap(models.Model):
    """Calls of one UTC month and model that the rollups hold and the log lost (rows dropped or
    deleted outside the service), recorded by `usage_reconcile --from-rollups --fix` once a person
    has said the rollups are the truth.

    With these rows, log + retired months + recorded gaps = rollups again: the consistency check
    (aicost.W012) clears, retention counts them when it compares a month with its rollups, and a
    later reconcile keeps the counters at the rollups' figures."""

    month = models.DateField(
        help_text=_("First day of the UTC month the rows were lost from."), verbose_name=_("month")
    )
    model_name = models.CharField(max_length=100, verbose_name=_("model name"))
    calls = models.BigIntegerField(verbose_name=_("calls"))
    cost = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, verbose_name=_("cost"))
    recorded_at = models.DateTimeField(verbose_name=_("recorded at"))

    class Meta:
        db_table = "ai_usage_log_gap"
        ordering = ["-month", "model_name"]
        verbose_name = _("usage log gap")
        constraints = [
            models.UniqueConstraint(fields=["month", "model_name"], name="ai_usage_log_gap_key"),
        ]
        verbose_name_plural = _("usage log gaps")

    def __str__(self) -> str:
        return gettext("%(model)s %(month)s: %(calls)s calls lost") % {
            "model": self.model_name,
            "month": f"{self.month:%Y-%m}",
            "calls": self.calls,
        }


class UsageCounter(models.Model):
    """A model's running totals, added to by every ingestion batch in its transaction: all calls and
    cost, and the cost of the current month (TIME_ZONE; current_month says which month it counts).

    The quick consistency check (aicost.W012) compares them with the rollups; `usage_reconcile`
    sets them from the record. Costs are in the model's pricing currency."""

    model_name = models.CharField(max_length=100, unique=True, verbose_name=_("model name"))
    total_calls = models.BigIntegerField(default=0, verbose_name=_("total calls"))
    total_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, default=0, verbose_name=_("total cost")
    )
    current_month = models.DateField(
        null=True,
        blank=True,
        help_text=_("First day of the month current_month_cost counts."),
        verbose_name=_("current month"),
    )
    current_month_cost = models.DecimalField(
        max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, default=0, verbose_name=_("current month cost")
    )
    updated_at = models.DateTimeField(verbose_name=_("updated at"))

    class Meta:
        db_table = "ai_usage_counter"
        ordering = ["model_name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(total_calls__gte=0, total_cost__gte=0, current_month_cost__gte=0),
                name="ai_usage_counter_not_negative",
            ),
        ]
        verbose_name = _("usage counter")
        verbose_name_plural = _("usage counters")

    def __str__(self) -> str:
        return gettext("%(model)s: %(calls)s calls") % {"model": self.model_name, "calls": self.total_calls}

    def month_cost(self, month) -> Decimal:
        """What the counter says was spent in `month` (first day): nothing if it counts another month."""
        return self.current_month_cost if self.current_month == month else Decimal(0)


class ApiKeyScope(models.TextChoices):
    READ = "read", _("Read stats")
    WRITE_USAGE = "write_usage", _("Write usage")
    READ_WRITE = "read_write", _("Read stats and write usage")


class ApiKey(models.Model):
    """A key a client sends as `Authorization: Api-Key <key>`. Only its SHA-256 is stored."""

    name = models.CharField(max_length=100, verbose_name=_("name"))
    prefix = models.CharField(max_length=12, unique=True, editable=False, verbose_name=_("prefix"))
    key_hash = models.CharField(max_length=64, unique=True, editable=False, verbose_name=_("key hash"))
    scope = models.CharField(
        max_length=12, choices=ApiKeyScope.choices, default=ApiKeyScope.WRITE_USAGE, verbose_name=_("scope")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("revoked at"))
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False, verbose_name=_("last used at"))
    ingest_records_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name=_("ingest records per minute"),
        help_text=_(
            "At most this many usage records (POST /api/v1/usage/ records, /v1/traces spans) per minute; "
            "a batch over it is refused whole with 429. Empty: unlimited."
        ),
    )
    read_requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name=_("read requests per minute"),
        help_text=_("At most this many read requests (stats, trend, export…) per minute, then 429. Empty: unlimited."),
    )

    class Meta:
        db_table = "ai_api_key"
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_read(self) -> bool:
        return self.scope in (ApiKeyScope.READ, ApiKeyScope.READ_WRITE)

    @property
    def can_write_usage(self) -> bool:
        return self.scope in (ApiKeyScope.WRITE_USAGE, ApiKeyScope.READ_WRITE)


class ApiKeyRateKind(models.TextChoices):
    INGEST = "ingest", _("Ingested records")
    READ = "read", _("Read requests")


class ApiKeyRateWindow(models.Model):
    """What a key used of one limit in its current one-minute window: one row per key and kind, moved
    on to the next window by the same UPSERT that counts (usage.keys.api_key_rate_take), so the table
    holds at most two rows per key and every worker and process shares the count."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+", verbose_name=_("API key"))
    kind = models.CharField(max_length=8, choices=ApiKeyRateKind.choices, verbose_name=_("kind"))
    window_start = models.BigIntegerField(verbose_name=_("window start (Unix seconds)"))
    used = models.PositiveIntegerField(verbose_name=_("used"))

    class Meta:
        db_table = "ai_api_key_rate"
        constraints = [models.UniqueConstraint(fields=["api_key", "kind"], name="ai_api_key_rate_key_kind")]
        verbose_name = _("API key rate window")
        verbose_name_plural = _("API key rate windows")

    def __str__(self) -> str:
        return f"{self.api_key_id}/{self.kind}@{self.window_start}: {self.used}"


class UsageIdempotencyKey(models.Model):
    """A (decision_id, idempotency_key) pair already stored, so a retried record is stored once.

    Kept apart from the usage log on purpose: the log is range-partitioned by timestamp on
    PostgreSQL, where a unique constraint must include the partition key, and a retry that omits
    its timestamp gets a new one. This small table enforces the pair's uniqueness on its own.
    """

    decision_id = models.CharField(max_length=100, verbose_name=_("decision id"))
    idempotency_key = models.CharField(max_length=100, verbose_name=_("idempotency key"))
    created_at = models.DateTimeField(verbose_name=_("created at"))

    class Meta:
        db_table = "ai_usage_idempotency"
        constraints = [
            models.UniqueConstraint(fields=["decision_id", "idempotency_key"], name="ai_usage_idempotency_key"),
        ]
        verbose_name = _("usage idempotency key")
        verbose_name_plural = _("usage idempotency keys")

    def __str__(self) -> str:
        return f"{self.decision_id}/{self.idempotency_key}"


class RepriceStatus(models.TextChoices):
    DRY_RUN = "dry_run", "Dry run (nothing changed)"
    RUNNING = "running", "Running (or interrupted: rerun the same command to continue)"
    FINISHED = "finished", "Finished"


class UsageRepriceRun(models.Model):
    """One run of `usage_reprice` (usage.services.usage_reprice): who ran it, over which calls, with
    which price versions, and what it changed. An applied run commits in bounded transactions; the
    cursor is the (timestamp, id) of the last call it went through, so a rerun continues after it."""

    actor = models.CharField(max_length=150, help_text="OS user or --actor.")
    model_name = models.CharField(max_length=100)
    since = models.DateTimeField()
    until = models.DateTimeField()
    backdate = models.BooleanField(default=False, help_text="The model's current price was put in force from since.")
    status = models.CharField(max_length=10, choices=RepriceStatus.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    version_ids = models.JSONField(default=list, help_text="The price versions the new costs come from.")
    calls_seen = models.BigIntegerField(default=0)
    calls_changed = models.BigIntegerField(default=0)
    delta = models.JSONField(default=dict, help_text="Currency -> new minus old cost (exact, as a string).")
    transactions = models.IntegerField(default=0)
    cursor_timestamp = models.DateTimeField(null=True, blank=True)
    cursor_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "ai_usage_reprice_run"
        ordering = ["-started_at"]
        verbose_name = "usage reprice run"

    def __str__(self) -> str:
        return f"{self.model_name} {self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} ({self.status})"


class UsageRepriceChange(models.Model):
    """What a repriced call was before a run changed it: its history of costs and price versions
    (the row itself holds the new ones). Version ids are plain numbers: a back-dated price removes
    the versions it replaces, and the history keeps naming them."""

    run = models.ForeignKey(UsageRepriceRun, on_delete=models.PROTECT, related_name="changes")
    log_id = models.BigIntegerField(db_index=True)
    timestamp = models.DateTimeField()
    old_model_name = models.CharField(max_length=100)
    old_cost = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, null=True)
    old_cost_source = models.CharField(max_length=10, choices=CostSource.choices)
    old_version_id = models.BigIntegerField(null=True)
    new_cost = models.DecimalField(max_digits=COST_MAX_DIGITS, decimal_places=COST_DECIMAL_PLACES, null=True)
    new_cost_source = models.CharField(max_length=10, choices=CostSource.choices)
    new_version_id = models.BigIntegerField(null=True)

    class Meta:
        db_table = "ai_usage_reprice_change"
        ordering = ["log_id", "id"]
        verbose_name = "usage reprice change"

    def __str__(self) -> str:
        return f"log {self.log_id}: {self.old_cost} -> {self.new_cost}"
