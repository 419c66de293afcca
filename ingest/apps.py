from django.apps import AppConfig


class IngestConfig(AppConfig):
    """Recording usage as a whole: usage stores a batch, alerts evaluates the budgets it touched."""

    name = "ingest"
