from django.apps import AppConfig


class SchemaGuardConfig(AppConfig):
    """The schema guard: the live schema checked against the models (aicost.E001...), its repair,
    the health endpoints, and the commands that refuse to run on a broken schema."""

    name = "schemaguard"
    verbose_name = "schema guard"

    def ready(self) -> None:
        from schemaguard import checks  # noqa: F401 -- registers the schema guard check
