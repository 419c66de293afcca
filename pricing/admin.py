from django.contrib import admin, messages
from django.db.models import QuerySet

from core.admin_base import ReadOnlyModelAdmin
from pricing.models import ModelPriceVersion, ModelPricing
from pricing.services import model_pricing_create, model_pricing_set_enabled, model_pricing_update


class PriceVersionInline(admin.TabularInline):
    """Price history, read-only: a version is never edited once it has been in force."""

    model = ModelPriceVersion
    extra = 0
    can_delete = False
    ordering = ["-effective_from"]
    fields = [
        "effective_from",
        "effective_to",
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "currency",
        "source",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelPricing)
class ModelPricingAdmin(admin.ModelAdmin):
    list_display = [
        "model_name",
        "display_name",
        "provider",
        "model_type",
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "currency",
        "monthly_budget",
        "enabled",
        "is_free",
    ]
    list_editable = [
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "monthly_budget",
        "enabled",
    ]
    list_filter = ["provider", "enabled", "model_type", "is_free"]
    search_fields = ["model_name", "display_name", "provider"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [PriceVersionInline]
    actions = ["enable_models", "disable_models"]

    def save_model(self, request, obj: ModelPricing, form, change: bool) -> None:
        if change:
            data = {name: form.cleaned_data[name] for name in form.changed_data}
            model_pricing_update(pricing=obj, data=data)
        else:
            created = model_pricing_create(**{name: form.cleaned_data[name] for name in _CREATE_FIELDS}, source="admin")
            obj.pk = created.pk

    @admin.action(description="Enable selected models")
    def enable_models(self, request, queryset: QuerySet[ModelPricing]) -> None:
        count = model_pricing_set_enabled(model_names=list(queryset.values_list("model_name", flat=True)), enabled=True)
        self.message_user(request, f"Enabled {count} model(s).", messages.SUCCESS)

    @admin.action(description="Disable selected models")
    def disable_models(self, request, queryset: QuerySet[ModelPricing]) -> None:
        names = list(queryset.values_list("model_name", flat=True))
        count = model_pricing_set_enabled(model_names=names, enabled=False)
        self.message_user(request, f"Disabled {count} model(s).", messages.SUCCESS)


_CREATE_FIELDS = [
    "model_name",
    "provider",
    "display_name",
    "model_type",
    "currency",
    "input_price_per_million",
    "output_price_per_million",
    "cached_input_price_per_million",
    "monthly_budget",
    "enabled",
    "is_free",
]


@admin.register(ModelPriceVersion)
class ModelPriceVersionAdmin(ReadOnlyModelAdmin):
    list_display = [
        "pricing",
        "effective_from",
        "effective_to",
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "currency",
        "source",
    ]
    list_filter = ["pricing__provider", "currency"]
    search_fields = ["pricing__model_name", "source"]
    list_select_related = ["pricing"]
