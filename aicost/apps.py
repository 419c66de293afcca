from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class AicostConfig(AppConfig):
    """Cross-cutting parts: API plumbing, demo data, and (later) the schema guard."""

    name = "aicost"
    verbose_name = "aicost"

    def ready(self) -> None:
        from aicost import checks  # noqa: F401 -- registers the schema guard check
        from aicost.api import schema  # noqa: F401 -- registers the API-key scheme with drf-spectacular


class AicostAdminConfig(AdminConfig):
    """django.contrib.admin with aicost's site (it adds /admin/ai-cost)."""

    default_site = "aicost.admin_site.AicostAdminSite"
