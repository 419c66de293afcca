"""The admin site, with the AI cost page inside it (same login, same look)."""

from django.contrib import admin
from django.db import DatabaseError, transaction
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy, ngettext, to_locale
from django.utils.translation import gettext as _
from django.views.generic import RedirectView

from alerts.selectors import BUDGET_TABLES, DIMENSION_BUDGET_TABLES, budgets_this_month, dimension_budgets_this_month
from core.money import money_format_rule
from pricing.selectors import reporting_currency
from schemaguard.guard import SchemaReport, schema_health, schema_report

COST_PAGE_APP_LABEL = "ai-cost"
DECISION_PLACEHOLDER = "__decision__"  # The page's script puts the decision id asked for in its place.


class AicostAdminSite(admin.AdminSite):
    site_header = "aicost"
    site_title = "aicost"
    index_title = gettext_lazy("Administration")
    index_template = "admin/aicost_index.html"

    def get_urls(self):
        return [
            path("ai-cost", self.admin_view(self.ai_cost_view), name="ai-cost"),
            # Typed or bookmarked with a trailing slash: the page, not the admin's catch-all 404.
            path("ai-cost/", RedirectView.as_view(pattern_name="admin:ai-cost", permanent=True, query_string=True)),
            *super().get_urls(),
        ]

    def get_app_list(self, request, app_label=None):
        """The index and the nav sidebar list the cost page first, as an app of its own."""
        app_list = super().get_app_list(request, app_label)
        if app_label is None:
            app_list.insert(0, _cost_page_entry())
        return app_list

    def each_context_safely(self, request) -> dict:
        """each_context, or the admin's look without what reads the database when those reads fail
        (the sidebar asks models' admins, e.g. whether a global budget exists, which reads its table)."""
        try:
            with transaction.atomic():  # A savepoint: a failed read leaves the connection usable.
                return self.each_context(request)
        except DatabaseError:
            return self.each_context_without_database()

    def each_context_without_database(self) -> dict:
        """The header and breadcrumbs with nothing that reads the database: no user, no sidebar, no
        messages (the session may live in the database that just failed)."""
        return {
            "site_header": self.site_header,
            "site_title": self.site_title,
            "site_url": self.site_url,
            "has_permission": False,
            "is_nav_sidebar_enabled": False,
            "available_apps": [],
            "is_popup": False,
            "user": None,
            "perms": None,
            "messages": [],
        }

    def index(self, request, extra_context=None):
        return super().index(request, {"schema": _index_schema_report(), **(extra_context or {})})

    def ai_cost_view(self, request):
        """The page renders even when tables are missing: a banner names what is missing and how to
        repair it, and every panel whose API still answers is shown under it. The status stays 503
        while the schema has errors, for probes and monitors that look at the page."""
        report = schema_report()
        context = {
            **self.each_context_safely(request),
            "title": _("AI cost"),
            "schema": report,
            "budgets": _budgets_panel(report),
            "dimension_budgets": _dimension_budgets_panel(report),
            "stats_url": reverse("usage-stats"),
            "trend_url": reverse("usage-cost-trend-daily"),
            "alerts_url": reverse("alerts-list"),
            "decision_url": reverse("usage-decision", args=[DECISION_PLACEHOLDER]),
            "reporting_currency": reporting_currency(),
            "page_text": _page_text(),
        }
        return TemplateResponse(request, "admin/ai_cost.html", context, status=200 if report.healthy else 503)


def _cost_page_entry() -> dict:
    url = reverse("admin:ai-cost")
    return {
        "name": _("AI cost"),
        "app_label": COST_PAGE_APP_LABEL,
        "app_url": url,
        "has_module_perms": True,
        "models": [
            {
                "name": _("Usage, trend, budgets and alerts"),
                "object_name": "CostPage",
                "admin_url": url,
                "add_url": None,
                "view_only": True,
                "perms": {"view": True},
            }
        ],
    }


def _page_text() -> dict:
    """What the page's script writes, in the request's language: its sentences (%(name)s placeholders)
    and how money and dates are written (core.money.money_format's rule)."""
    language = get_language() or "en"
    return {
        "locale": to_locale(language).replace("_", "-"),
        "money": money_format_rule(language),
        "localDates": not language.startswith("en"),
        "noBudget": _("no budget"),
        "unpriced": _("unpriced"),
        "unknownProvider": _("unknown"),
        "plusUnpriced": _("(+%(count)s unpriced)"),
        # "N calls unconverted (no exchange rate)": the forms for one call and for several.
        "unconverted": {
            "one": ngettext(
                "%(count)s call unconverted (no exchange rate): its cost is not in the totals.",
                "%(count)s calls unconverted (no exchange rate): their cost is not in the totals.",
                1,
            ),
            "other": ngettext(
                "%(count)s call unconverted (no exchange rate): its cost is not in the totals.",
                "%(count)s calls unconverted (no exchange rate): their cost is not in the totals.",
                2,
            ),
        },
        "plusUnconverted": _("(+%(count)s unconverted)"),
        "otherModels": _("Other models"),
        "decisionTotals": _(
            "%(calls)s calls (%(failed)s failed), %(tokensIn)s tokens in and %(tokensOut)s out, %(cost)s in all."
        ),
        "budgetNoRate": _("%(budget)s: no exchange rate into %(currency)s, not compared"),
        "budgetUse": _("%(percent)s of %(budget)s"),
        "seconds": _("%(seconds)s s"),
        "costOf": _("Cost (%(currency)s)"),
        "trendSummary": _("%(days)s days: total %(total)s, average %(average)s a day, highest %(highest)s."),
        "unavailable": _("Unavailable: %(reason)s"),
        "tableMissing": _("%(missing)s is missing from the database (HTTP %(status)s, %(code)s)."),
    }


def _index_schema_report() -> SchemaReport | None:
    """The full report only when the cached health (a few seconds old at most) says there is
    something to show: a healthy index costs no introspection."""
    if schema_health().findings:
        return schema_report()
    return None


def _budgets_panel(report: SchemaReport) -> dict:
    """This month's budgets from the price table and the global budget: they do not need the usage
    log, so they are shown while it is missing."""
    missing = [table for table in BUDGET_TABLES if table in report.missing_tables]
    if missing:
        return {"unavailable": _("table %(tables)s is missing from the database.") % {"tables": ", ".join(missing)}}
    try:
        with transaction.atomic():  # A savepoint: a failed query leaves the page's transaction usable.
            return budgets_this_month(now=timezone.now())
    except DatabaseError as error:
        return {"unavailable": str(error).strip().splitlines()[0]}


def _dimension_budgets_panel(report: SchemaReport) -> dict:
    """The users' and purposes' budgets: their spend is read from the usage log, so while it (or their
    tables) is missing the panel says so under the other budgets."""
    missing = [table for table in DIMENSION_BUDGET_TABLES if table in report.missing_tables]
    if missing:
        return {"unavailable": _("table %(tables)s is missing from the database.") % {"tables": ", ".join(missing)}}
    try:
        with transaction.atomic():
            return dimension_budgets_this_month(now=timezone.now())
    except DatabaseError as error:
        return {"unavailable": str(error).strip().splitlines()[0]}
