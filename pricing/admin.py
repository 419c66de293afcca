from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet, construct_instance
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from core.admin_base import ReadOnlyModelAdmin
from pricing.models import (
    PRICE_FIELDS,
    REQUIRED_TOKEN_PRICE_FIELDS,
    TOKEN_PRICE_FIELDS,
    ExchangeRate,
    ModelNamePattern,
    ModelPriceTier,
    ModelPriceVersion,
    ModelPriceVersionTier,
    ModelPricing,
)
from pricing.selectors import pricing_match
from pricing.services import (
    ExchangeRateQuote,
    PriceTierInput,
    exchange_rate_add,
    exchange_rates_import,
    model_name_check,
    model_name_patterns_check,
    model_name_patterns_set,
    model_pricing_create,
    model_pricing_set_enabled,
    model_pricing_update,
    price_tier_validated,
    price_tiers_validated,
    price_validated,
)

TEST_NAME_PARAMETER = "test_name"


def _patterns_checked(pricing: ModelPricing | None, patterns: list[tuple[str, str]]) -> None:
    """pricing None or unsaved: a model being added (the formset checks its own name)."""
    model_name = getattr(pricing, "model_name", "") or ""
    saved = pricing if pricing is not None and pricing.pk else None
    try:
        model_name_patterns_check(pricing=saved, model_name=model_name, patterns=patterns)
    except ValidationError as error:
        raise ValidationError(error.messages) from None


class NamePatternForm(forms.ModelForm):
    class Meta:
        model = ModelNamePattern
        fields = ["kind", "pattern"]

    def clean(self) -> dict:
        """Each pattern on its own (an error here also spares it the bare constraint message)."""
        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("pattern") and not cleaned.get("DELETE"):
            try:
                pricing = self.instance.pricing if self.instance.pricing_id else None  # None: being added.
                _patterns_checked(pricing, [(cleaned["kind"], cleaned["pattern"])])
            except ValidationError as error:
                self.add_error("pattern", error)
        return cleaned


class NamePatternFormSet(forms.BaseInlineFormSet):
    """Checks the model's patterns as a whole (pricing.services.model_name_patterns_check); the
    admin then saves them through model_name_patterns_set."""

    def patterns(self) -> list[tuple[str, str]]:
        kept = [form for form in self.forms if form.cleaned_data and not self._should_delete_form(form)]
        return [(form.cleaned_data["kind"], form.cleaned_data["pattern"]) for form in kept]

    def clean(self) -> None:
        super().clean()
        if not any(self.errors):
            _patterns_checked(self.instance, self.patterns())


class NamePatternInline(admin.TabularInline):
    """Other names the model's calls arrive under: aliases (exact), prefixes, regular expressions.
    Which one prices a name: model_name, then alias, then the longest prefix, then an expression."""

    model = ModelNamePattern
    form = NamePatternForm
    formset = NamePatternFormSet
    extra = 1
    fields = ["kind", "pattern"]
    verbose_name = _("other name (alias, prefix or regular expression)")
    verbose_name_plural = _("other names: alias (exact), prefix, or regular expression (full match, Python re)")


class ModelPricingForm(forms.ModelForm):
    """The prices obey pricing.services' rules (the same the services apply)."""

    class Meta:
        model = ModelPricing
        fields = [
            "model_name",
            "provider",
            "display_name",
            "model_type",
            "currency",
            *PRICE_FIELDS,
            "monthly_budget",
            "budget_currency",
            "enabled",
            "is_free",
        ]

    def clean(self):
        cleaned = super().clean()
        for name in PRICE_FIELDS:
            if name in cleaned:
                try:
                    price_validated(field=name, value=cleaned[name], required=name in REQUIRED_TOKEN_PRICE_FIELDS)
                except ValidationError as error:
                    self.add_error(None, error)
        return cleaned

    def clean_model_name(self) -> str:
        model_name = self.cleaned_data["model_name"]
        try:
            model_name_check(model_name=model_name, pricing=self.instance if self.instance.pk else None)
        except ValidationError as error:
            raise ValidationError(error.messages) from None
        return model_name


def _tier_input(cleaned: dict) -> PriceTierInput:
    return PriceTierInput(
        above_prompt_tokens=cleaned.get("above_prompt_tokens"),
        **{name: cleaned.get(name) for name in TOKEN_PRICE_FIELDS},
    )


class PriceTierForm(forms.ModelForm):
    class Meta:
        model = ModelPriceTier
        fields = ["above_prompt_tokens", *TOKEN_PRICE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("DELETE"):
            try:
                price_tier_validated(tier=_tier_input(cleaned))
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned


class PriceTierFormSet(BaseInlineFormSet):
    def tiers(self) -> list[PriceTierInput]:
        """The tiers the form keeps (empty extra forms and deleted ones left out)."""
        return [
            _tier_input(form.cleaned_data)
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]

    def clean(self):
        if not any(self.errors):  # Before Django's own uniqueness check: the services' message.
            try:
                price_tiers_validated(tiers=self.tiers())
            except ValidationError as error:
                messages = [message for field_messages in error.message_dict.values() for message in field_messages]
                raise ValidationError(messages) from None
        super().clean()


class PriceTierInline(admin.TabularInline):
    """Long-context tiers of the prices in force: a call with more prompt tokens than a tier's
    threshold is priced entirely at the highest such tier. Saving a change opens a new price version."""

    model = ModelPriceTier
    form = PriceTierForm
    formset = PriceTierFormSet
    extra = 1
    fields = ["above_prompt_tokens", *TOKEN_PRICE_FIELDS]


class PriceVersionInline(admin.TabularInline):
    """Price history, read-only: a version is never edited once it has been in force."""

    model = ModelPriceVersion
    extra = 0
    can_delete = False
    ordering = ["-effective_from"]
    fields = ["effective_from", "effective_to", *PRICE_FIELDS, "currency", "enabled", "is_free", "source"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


_PRICE_FIELDSETS = [
    (_("Input prices (per million tokens)"), {"fields": list(TOKEN_PRICE_FIELDS[:5])}),
    (_("Output prices (per million tokens)"), {"fields": list(TOKEN_PRICE_FIELDS[5:])}),
    (_("Per call"), {"fields": ["price_per_call"]}),
]


@admin.register(ModelPricing)
class ModelPricingAdmin(admin.ModelAdmin):
    form = ModelPricingForm
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
    fieldsets = [
        (None, {"fields": ["model_name", "provider", "display_name", "model_type", "currency"]}),
        *_PRICE_FIELDSETS,
        (None, {"fields": ["monthly_budget", "budget_currency", "enabled", "is_free", "created_at", "updated_at"]}),
    ]
    inlines = [NamePatternInline, PriceTierInline, PriceVersionInline]
    actions = ["enable_models", "disable_models"]
    change_list_template = "admin/pricing/modelpricing/change_list.html"

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=ModelPricingForm, **kwargs)

    def save_model(self, request, obj: ModelPricing, form, change: bool) -> None:
        """Nothing here: save_related writes the model, its prices and its tiers together, through
        pricing.services, so one edit of prices and tiers makes one price version."""

    def save_related(self, request, form, formsets, change: bool) -> None:
        tiers = None
        patterns = None
        for formset in formsets:
            if isinstance(formset, NamePatternFormSet):
                patterns = formset
                continue
            formset.save(commit=False)  # Only what changed, for the admin's history; the services write.
            if isinstance(formset, PriceTierFormSet) and formset.has_changed():
                tiers = formset.tiers()
        obj = form.instance
        if change:
            data = {name: form.cleaned_data[name] for name in form.changed_data}
            model_pricing_update(pricing=obj, data=data, tiers=tiers)
        else:
            fields = {name: form.cleaned_data[name] for name in _CREATE_FIELDS}
            created = model_pricing_create(**fields, tiers=tiers or (), source="admin")
            obj.pk = created.pk
        if patterns is not None:
            self._patterns_save(obj, patterns)

    def _patterns_save(self, pricing: ModelPricing, formset: "NamePatternFormSet") -> None:
        model_name_patterns_set(pricing=pricing, patterns=formset.patterns())
        # What the admin's change message reads (formset.save() would set them).
        formset.new_objects = [f.instance for f in formset.extra_forms if f.has_changed() and f.cleaned_data]
        formset.changed_objects = []
        formset.deleted_objects = [f.instance for f in formset.deleted_forms if f.instance.pk]

    def changelist_view(self, request, extra_context=None):
        """The list, with a tester: which model a name would be priced as, and by which rule."""
        extra_context = dict(extra_context or {})
        if TEST_NAME_PARAMETER in request.GET:
            query = request.GET.copy()
            name = query.pop(TEST_NAME_PARAMETER)[-1].strip()
            request.GET = query  # The change list takes every other parameter for a filter.
            extra_context["name_test_value"] = name
            if name:
                extra_context["name_test"] = pricing_match(name=name)
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description=_("Enable selected models"))
    def enable_models(self, request, queryset: QuerySet[ModelPricing]) -> None:
        count = model_pricing_set_enabled(model_names=list(queryset.values_list("model_name", flat=True)), enabled=True)
        self.message_user(
            request,
            ngettext("Enabled %(count)d model.", "Enabled %(count)d models.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected models"))
    def disable_models(self, request, queryset: QuerySet[ModelPricing]) -> None:
        names = list(queryset.values_list("model_name", flat=True))
        count = model_pricing_set_enabled(model_names=names, enabled=False)
        self.message_user(
            request,
            ngettext("Disabled %(count)d model.", "Disabled %(count)d models.", count) % {"count": count},
            messages.SUCCESS,
        )


_CREATE_FIELDS = ModelPricingForm.Meta.fields


class PriceVersionTierInline(admin.TabularInline):
    """The tiers the version holds, as they were in force with it."""

    model = ModelPriceVersionTier
    extra = 0
    can_delete = False
    fields = ["above_prompt_tokens", *TOKEN_PRICE_FIELDS]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


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
        "enabled",
        "is_free",
        "source",
    ]
    list_filter = ["pricing__provider", "currency"]
    search_fields = ["pricing__model_name", "source"]
    list_select_related = ["pricing"]
    fieldsets = [
        (None, {"fields": ["pricing", "currency", "effective_from", "effective_to", "source", "created_at"]}),
        *_PRICE_FIELDSETS,
    ]
    inlines = [PriceVersionTierInline]


class ExchangeRateForm(forms.ModelForm):
    """A new rate of the history, checked by pricing.services' rule (the same fx_import follows):
    the admin then stores it through exchange_rate_add. An empty start is now."""

    class Meta:
        model = ExchangeRate
        fields = ["base_currency", "quote_currency", "rate", "effective_from", "source"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "effective_from" in self.fields:
            self.fields["effective_from"].required = False
            self.fields["effective_from"].help_text = _(
                "Empty: now. Never in the past, unless before the pair's first rate."
            )
        for name in ("base_currency", "quote_currency"):
            if name in self.fields:
                self.fields[name].help_text = _("ISO 4217 code, three capital letters (e.g. USD).")

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        now = timezone.now()
        for name in ("base_currency", "quote_currency"):
            cleaned[name] = (cleaned.get(name) or "").strip().upper()
        quote = ExchangeRateQuote(
            base_currency=cleaned["base_currency"],
            quote_currency=cleaned["quote_currency"],
            rate=cleaned.get("rate"),
            effective_from=cleaned.get("effective_from") or now,
            source=cleaned.get("source") or "",
        )
        planned = exchange_rates_import(quotes=[quote], apply=False, now=now)
        for refusal in planned.refused:
            self.add_error(refusal.field if refusal.field in self.fields else None, refusal.reason)
        if planned.unchanged:
            self.add_error(None, gettext("This rate is already stored for this pair and start."))
        return cleaned

    def _post_clean(self) -> None:
        """The instance from the form, without the model's own validation: the service's rule covers
        it (and keeps one open row per pair by closing the current one, which the constraint check
        of an unsaved row would report as a conflict)."""
        self.instance = construct_instance(self, self.instance, self._meta.fields, self._meta.exclude)


class ExchangeRatePairFilter(admin.SimpleListFilter):
    title = _("pair")
    parameter_name = "pair"

    def lookups(self, request, model_admin):
        pairs = ExchangeRate.objects.order_by().values_list("base_currency", "quote_currency").distinct()
        return [(f"{base}-{quote}", f"{base}→{quote}") for base, quote in sorted(pairs)]

    def queryset(self, request, queryset):
        value = self.value()
        if not value or "-" not in value:
            return queryset
        base, quote = value.split("-", 1)
        return queryset.filter(base_currency=base, quote_currency=quote)


class ExchangeRateInForceFilter(admin.SimpleListFilter):
    title = _("in force")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", _("Still in force")), ("no", _("Ended"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(effective_to__isnull=True)
        if self.value() == "no":
            return queryset.filter(effective_to__isnull=False)
        return queryset


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    """Exchange rates as a history: listed, added through pricing.services (a newer rate closes the
    pair's open one), never edited or deleted (a stored row's page is read-only)."""

    form = ExchangeRateForm
    list_display = [
        "base_currency",
        "quote_currency",
        "rate",
        "effective_from",
        "effective_to",
        "source",
        "created_at",
    ]
    list_filter = [ExchangeRatePairFilter, ExchangeRateInForceFilter, "source"]
    search_fields = ["base_currency", "quote_currency", "source"]
    date_hierarchy = "effective_from"
    fields = ["base_currency", "quote_currency", "rate", "effective_from", "effective_to", "source", "created_at"]
    readonly_fields = ["effective_to", "created_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ExchangeRateForm.Meta.fields
        return self.fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: ExchangeRate, form, change: bool) -> None:
        """Only adding reaches here (no change permission): through the service, which closes the
        pair's open rate when this one is newer."""
        created = exchange_rate_add(
            base_currency=form.cleaned_data["base_currency"],
            quote_currency=form.cleaned_data["quote_currency"],
            rate=form.cleaned_data["rate"],
            effective_from=form.cleaned_data.get("effective_from"),
            source=form.cleaned_data.get("source") or "",
        )
        for model_field in ExchangeRate._meta.concrete_fields:
            setattr(obj, model_field.attname, getattr(created, model_field.attname))
