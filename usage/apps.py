from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = _("Usage")

    def ready(self) -> None:
        from schemaguard.guard import consistency_check_register, table_layout_register
        from usage import authentication  # noqa: F401 -- registers the API-key scheme with drf-spectacular
        from usage.checks import usage_consistency_check, usage_log_layout

        table_layout_register(usage_log_layout())
        consistency_check_register(usage_consistency_check())
