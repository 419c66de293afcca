from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"

    def ready(self) -> None:
        from aicost.schema_guard import table_layout_register
        from usage.checks import usage_log_layout

        table_layout_register(usage_log_layout())
