from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class DashboardConfig(AppConfig):
    """What people look at: the admin site with the AI cost page, /metrics, and the demo data."""

    name = "dashboard"
    verbose_name = "dashboard"


class DashboardAdminConfig(AdminConfig):
    """django.contrib.admin with aicost's site (it adds /admin/ai-cost)."""

    default_site = "dashboard.admin_site.AicostAdminSite"
