from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PricingConfig(AppConfig):
    name = "pricing"
    verbose_name = _("Pricing")

    def ready(self) -> None:
        from pricing.generation import price_generation_layouts
        from schemaguard.guard import table_layout_register

        for layout in price_generation_layouts():
            table_layout_register(layout)
