"""The admin while the schema is broken or has warnings: the banners on the index and the cost page,
the panels that still work under them, and 503 pages in the admin's look (issue 13, point 6)."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingest.services import usage_record
from pricing.models import ModelPricing
from tests.conftest import HttpsClient
from tests.gunicorn_server import free_port
from usage.partitions import add_months, month_of, partition_name

pytestmark = pytest.mark.django_db
PAGE = "/admin/ai-cost"


def _sql(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)  # Rolled back with the test (PostgreSQL's DDL is transactional).


def _drop_usage_log() -> None:
    _sql("DROP TABLE ai_model_usage_log")


def _drop_a_future_partition() -> str:
    future = add_months(month_of(timezone.now()), 2)
    _sql(f"DROP TABLE {partition_name(future)}")
    return f"{future:%Y-%m}"


# --- The cost page under the banner ------------------------------------------------------------


def test_a_broken_schema_keeps_the_panels_under_the_banner_and_the_503(staff_client):
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal("10"))
    usage_record(model_name="gpt-4o", prompt_tokens=10, completion_tokens=10, cost=Decimal("8.5"))
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # Checks its deferred foreign keys now, so the log can go.
    _drop_usage_log()
    response = staff_client.get(PAGE)
    assert response.status_code == 503  # /readyz-like probes and monitors of the page rely on it.
    page = response.content.decode()
    assert 'data-testid="schema-banner"' in page
    assert "<code>ai_model_usage_log</code>" in page
    for panel in ('id="ai-cost"', 'data-testid="trend-chart"', 'data-testid="alerts"', 'data-testid="models-table"'):
        assert panel in page, panel
    for message in ("stats-unavailable", "trend-unavailable", "alerts-unavailable"):
        assert f'data-testid="{message}"' in page  # Filled in by the page's script when its API fails.
    assert 'data-testid="budgets"' in page
    assert 'data-budget="GPT-4o"' in page  # Budgets read the price table and the rollups, not the log.
    assert "USD 8.50" in page
    assert "85.00%" in page
    assert 'data-testid="budgets-unavailable"' not in page
    assert 'id="site-name"' in page  # The admin's look ...
    assert 'id="nav-sidebar"' in page  # ... and its navigation.


def test_the_budgets_panel_says_why_it_is_unavailable(staff_client):
    _sql("ALTER TABLE ai_global_budget RENAME TO ai_global_budget_gone")
    response = staff_client.get(PAGE)
    assert response.status_code == 503
    page = response.content.decode()
    assert 'data-testid="budgets-unavailable"' in page
    assert "Unavailable: table ai_global_budget is missing from the database." in page


def test_a_healthy_page_has_no_banner_and_no_unavailable_panel(staff_client):
    response = staff_client.get(PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="schema-banner"' not in page
    assert 'data-testid="schema-warnings"' not in page
    assert 'data-testid="budgets-unavailable"' not in page
    assert 'data-testid="budgets-empty"' in page  # The seed prices have no budgets.


def test_warnings_show_in_their_own_banner_while_the_schema_is_healthy(staff_client):
    month = _drop_a_future_partition()
    response = staff_client.get(PAGE)
    assert response.status_code == 200  # A warning is not an error: the page stays 200.
    page = response.content.decode()
    assert 'data-testid="schema-banner"' not in page
    assert 'data-testid="schema-warnings"' in page
    assert 'data-finding="aicost.W011"' in page
    assert month in page  # The finding's message ...
    assert "usage_partitions" in page  # ... and its hint.


# --- The admin index ---------------------------------------------------------------------------


def test_the_index_shows_the_error_banner_on_a_broken_schema(staff_client):
    _drop_usage_log()
    page = staff_client.get("/admin/").content.decode()
    assert 'data-testid="schema-banner"' in page
    assert "<code>ai_model_usage_log</code>" in page
    assert "python manage.py schema_repair --apply" in page


def test_the_index_shows_warnings(staff_client):
    month = _drop_a_future_partition()
    page = staff_client.get("/admin/").content.decode()
    assert 'data-testid="schema-warnings"' in page
    assert 'data-testid="schema-banner"' not in page
    assert month in page


def test_a_healthy_index_shows_no_banner_and_reads_no_schema_report(staff_client):
    staff_client.get("/admin/")  # Fills the cached health (at most 5 s old).
    with CaptureQueriesContext(connection) as queries:
        page = staff_client.get("/admin/").content.decode()
    introspection = [q["sql"] for q in queries if "pg_class" in q["sql"] or "django_migrations" in q["sql"]]
    assert introspection == []
    assert 'data-testid="schema-banner"' not in page
    assert 'data-testid="schema-warnings"' not in page


# --- 503 pages in the admin's look -------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_admin_page_on_a_missing_table_is_a_503_in_the_admin_look(staff_client):
    """Committed, as in production (autocommit): the sidebar's own reads still work after the failure."""
    _drop_usage_log()
    try:
        response = staff_client.get("/admin/usage/usagelog/")
    finally:
        call_command("schema_repair", "--apply", stdout=StringIO())
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = response.content.decode()
    assert "The database schema is broken" in page
    assert "<code>ai_model_usage_log</code>" in page
    assert 'id="site-name"' in page  # Header ...
    assert 'class="breadcrumbs"' in page  # ... breadcrumbs ...
    assert 'id="nav-sidebar"' in page  # ... and the sidebar: the database still answers.
    assert 'href="/admin/ai-cost"' in page
    assert "Log out" in page


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lost_database_is_a_503_in_the_admin_look_without_what_reads_the_database(staff_user):
    """The database really refuses connections (the test's connection points at a port nothing
    listens on): the session and the user's permissions cannot be read, so the page does not read them."""
    client = HttpsClient()
    client.force_login(staff_user)
    settings_dict = connection.settings_dict
    port = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = str(free_port())
    try:
        response = client.get("/admin/")
    finally:
        connection.close()
        settings_dict["PORT"] = port
    assert response.status_code == 503
    page = response.content.decode()
    assert "The database is unavailable" in page
    assert 'id="site-name"' in page
    assert 'class="breadcrumbs"' in page
    assert 'id="nav-sidebar"' not in page
    assert "Log out" not in page


def test_the_error_page_keeps_the_admin_look_when_its_own_sidebar_cannot_be_read(client, django_user_model):
    """A staff user without superuser: the sidebar needs their permissions, and the permission table
    is gone too. The page falls back to the admin look without the sidebar, not to a 500."""
    user = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123", is_staff=True)
    client.force_login(user)
    _drop_usage_log()
    _sql("DROP TABLE auth_permission CASCADE")
    response = client.get("/admin/usage/usagelog/")
    assert response.status_code == 503
    page = response.content.decode()
    assert "The database schema is broken" in page
    assert "<code>auth_permission</code>" in page
    assert 'id="site-name"' in page
    assert 'id="nav-sidebar"' not in page
