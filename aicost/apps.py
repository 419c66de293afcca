from django.apps import AppConfig


class AicostConfig(AppConfig):
    """Cross-cutting parts: API plumbing, demo data, and (later) the schema guard."""

    name = "aicost"
    verbose_name = "aicost"

    def ready(self) -> None:
        from aicost import checks  # noqa: F401 -- registers the schema guard check
        from aicost.api import schema  # noqa: F401 -- registers the API-key scheme with drf-spectacular
