"""The admin site, with the AI cost page inside it (same login, same look)."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse

from aicost.schema_guard import schema_report


class AicostAdminSite(admin.AdminSite):
    site_header = "aicost"
    site_title = "aicost"
    index_title = "Administration"
    index_template = "admin/aicost_index.html"

    def get_urls(self):
        return [path("ai-cost", self.admin_view(self.ai_cost_view), name="ai-cost"), *super().get_urls()]

    def ai_cost_view(self, request):
        """The page renders even when tables are missing: the schema is checked before any usage query,
        and a banner names what is missing and how to repair it."""
        report = schema_report()
        context = {
            **self.each_context(request),
            "title": "AI cost",
            "schema": report,
            "stats_url": reverse("usage-stats"),
            "trend_url": reverse("usage-cost-trend-daily"),
            "alerts_url": reverse("alerts-list"),
        }
        return TemplateResponse(request, "admin/ai_cost.html", context, status=200 if report.healthy else 503)
