from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.admin_base import ReadOnlyModelAdmin
from usage.export import usage_csv_response, usage_selection_filename
from usage.keys import api_key_create, api_key_revoke, api_key_update
from usage.models import ApiKey, UsageCounter, UsageLog, UsageLogGap, UsageRepriceChange, UsageRepriceRun
from usage.selectors import usage_log_rows


@admin.register(UsageLog)
class UsageLogAdmin(ReadOnlyModelAdmin):
    """The log is evidence: staff read it, nobody edits it by hand."""

    list_display = [
        "timestamp",
        "model_name",
        "sent_model_name",
        "purpose",
        "user_id",
        "prompt_tokens",
        "completion_tokens",
        "token_parts",
        "cost",
        "cost_source",
        "success",
        "response_time",
    ]
    list_filter = ["success", "cost_source", "model_name"]
    search_fields = ["model_name", "sent_model_name", "decision_id", "purpose"]
    date_hierarchy = "timestamp"
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is not worth it.
    list_per_page = 100
    actions = ["export_csv"]
    # The detail page (read only) shows every column; the list shows the parts of the totals in one cell.
    TOKEN_PARTS = (
        ("cached_tokens", _("cached")),
        ("cache_write_5m_tokens", _("cache write 5m")),
        ("cache_write_1h_tokens", _("cache write 1h")),
        ("input_audio_tokens", _("audio in")),
        ("reasoning_tokens", _("reasoning")),
        ("output_audio_tokens", _("audio out")),
        ("output_image_tokens", _("image out")),
    )

    @admin.display(description=_("of which"))
    def token_parts(self, obj: UsageLog) -> str:
        """The parts of prompt and completion tokens the call had (e.g. "cached 1,024 · reasoning 40")."""
        parts = [f"{label} {getattr(obj, name):,}" for name, label in self.TOKEN_PARTS if getattr(obj, name)]
        return " · ".join(parts) or "—"

    @admin.action(description=_("Export selected rows as CSV"), permissions=["view"])
    def export_csv(self, request, queryset: QuerySet[UsageLog]) -> StreamingHttpResponse:
        """The API export's format; with "select all", every row the changelist's filters match."""
        filename = usage_selection_filename(at=timezone.now())
        return usage_csv_response(usage_log_rows(queryset), zone=timezone.get_current_timezone(), filename=filename)


def api_key_display_prefix(api_key: ApiKey) -> str:
    """The start of the plain key (aic_<prefix>_<secret>, usage/keys.py) that is not secret."""
    return f"aic_{api_key.prefix}_…"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "key_start",
        "scope",
        "ingest_records_per_minute",
        "read_requests_per_minute",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = [
        "name",
        "scope",
        "ingest_records_per_minute",
        "read_requests_per_minute",
        "key_start",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["key_start", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    @admin.display(description=_("Key begins with"), ordering="prefix")
    def key_start(self, obj: ApiKey) -> str:
        """The non-secret start of the key, as the holder sees it, to tell which key is which."""
        return api_key_display_prefix(obj)

    def get_readonly_fields(self, request, obj=None):
        # A key's scope is fixed once issued; issue a new key for another scope.
        return [*self.readonly_fields, "scope"] if obj else self.readonly_fields

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        fields = ("ingest_records_per_minute", "read_requests_per_minute")
        limits = {name: form.cleaned_data.get(name) for name in fields}
        if change:
            api_key_update(api_key=obj, name=form.cleaned_data["name"], **limits)
            return
        created, raw_key = api_key_create(
            name=form.cleaned_data["name"], scope=form.cleaned_data["scope"], created_by=request.user, **limits
        )
        obj.pk = created.pk
        self.message_user(
            request,
            _(
                "The key for “%(name)s” is %(key)s — copy it now, it is shown only this once. "
                "The key list shows it by its prefix %(prefix)s."
            )
            % {"name": created.name, "key": raw_key, "prefix": api_key_display_prefix(created)},
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected keys"))
    def revoke_keys(self, request, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        count = queryset.count()
        self.message_user(
            request,
            ngettext("Revoked %(count)d key.", "Revoked %(count)d keys.", count) % {"count": count},
            messages.SUCCESS,
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # Revoke instead, so the audit trail keeps who had access.


@admin.register(UsageLogGap)
class UsageLogGapAdmin(ReadOnlyModelAdmin):
    """Rows the log lost, recorded by `usage_reconcile --from-rollups --fix`: read only."""

    list_display = ["month", "model_name", "calls", "cost", "recorded_at"]
    list_filter = ["model_name"]


@admin.register(UsageCounter)
class UsageCounterAdmin(ReadOnlyModelAdmin):
    """Each model's running totals, kept by ingestion; `usage_reconcile` is the way to correct them."""

    list_display = ["model_name", "total_calls", "total_cost", "current_month", "current_month_cost", "updated_at"]
    search_fields = ["model_name"]


@admin.register(UsageRepriceRun)
class UsageRepriceRunAdmin(ReadOnlyModelAdmin):
    """Runs of `usage_reprice`: who repriced which calls, with which versions, by how much. Read only."""

    list_display = [
        "started_at",
        "model_name",
        "since",
        "until",
        "backdate",
        "status",
        "actor",
        "calls_seen",
        "calls_changed",
        "delta",
        "finished_at",
    ]
    list_filter = ["status", "backdate", "model_name"]
    search_fields = ["model_name", "actor"]


@admin.register(UsageRepriceChange)
class UsageRepriceChangeAdmin(ReadOnlyModelAdmin):
    """A repriced call's earlier cost, source and price version, one row per change. Read only."""

    list_display = [
        "log_id",
        "timestamp",
        "run",
        "old_model_name",
        "old_cost",
        "old_cost_source",
        "old_version_id",
        "new_cost",
        "new_cost_source",
        "new_version_id",
    ]
    list_filter = ["old_cost_source", "new_cost_source"]
    search_fields = ["=log_id", "old_model_name"]
    list_select_related = ["run"]
    show_full_result_count = False
