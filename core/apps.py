from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares and none owns: money, time helpers, database helpers, the API plumbing."""

    name = "core"
    verbose_name = "aicost core"

    def ready(self) -> None:
        from core.money import money_context_install

        money_context_install()
