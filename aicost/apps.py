from django.apps import AppConfig


class AicostConfig(AppConfig):
    """Cross-cutting parts: API plumbing, demo data, and (later) the schema guard."""

    name = "aicost"
    verbose_name = "aicost"
