from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares and none owns: money, time helpers, database helpers, the API plumbing."""

    name = "core"
    verbose_name = "aicost core"
