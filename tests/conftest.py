import math

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from core.db_routers import REPLICA
from schemaguard.guard import schema_health_forget
from tests.api_helpers import api_client_with_key
from usage.models import ApiKeyScope
from usage.rollups import rollups_compactor_stop


class HttpsClient(Client):
    """Production settings redirect plain HTTP to HTTPS; this client speaks HTTPS like a real one behind TLS."""

    def request(self, **request):
        request.update({"wsgi.url_scheme": "https", "SERVER_PORT": "443"})
        return super().request(**request)


def pytest_sessionstart(session):
    """The suite is meant for PostgreSQL; passing on SQLite would prove nothing about production."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.exit(
            f"Tests must run on PostgreSQL, not {engine}. Use bin/test (it starts a throwaway server) "
            "or set DATABASE_URL=postgres://...",
            returncode=3,
        )


def pytest_collection_modifyitems(items):
    """A transactional test flushes the database afterwards; without serialized_rollback that flush
    recreates the content types, and the next serialized_rollback test then fails at setup inserting
    them again (an error that depends on test order). So every transactional test restores the
    serialized database."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("transaction") and not marker.kwargs.get("serialized_rollback"):
            raise pytest.UsageError(f"{item.nodeid}: django_db(transaction=True) needs serialized_rollback=True")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A `replica` alias for the read-replica tests: its own connection to default's test database
    (a test mirror, as Django recommends for replicas). No router is installed here, so only tests that
    switch routing on (tests/test_db_router.py) ever query it."""
    default = settings.DATABASES["default"]
    settings.DATABASES[REPLICA] = {**default, "TEST": {**default.get("TEST", {}), "NAME": None, "MIRROR": "default"}}


@pytest.fixture(autouse=True)
def _no_background_compaction(settings):
    """No compactor thread unless a test asks for one (a finite AICOST_ROLLUP_COMPACT_SECONDS): the
    tests compact explicitly (usage.rollups.rollups_compact), so where rollup rows sit is theirs to
    choose. A thread a test started is stopped after it (its connection closed)."""
    settings.AICOST_ROLLUP_COMPACT_SECONDS = math.inf
    yield
    rollups_compactor_stop()


@pytest.fixture(autouse=True)
def _fresh_schema_health():
    """Readiness and metrics cache the schema check for seconds; no test may see another's schema."""
    schema_health_forget()
    yield
    schema_health_forget()


@pytest.fixture(autouse=True)
def _no_language_left_active():
    """Django's test client leaves the last response's language active on the thread: each test
    starts and ends with none (settings.LANGUAGE_CODE)."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def client():
    return HttpsClient()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="staff-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def writer(db):
    """An API client with a write_usage key."""
    return api_client_with_key(ApiKeyScope.WRITE_USAGE)


@pytest.fixture
def reader(db):
    """An API client with a read key."""
    return api_client_with_key(ApiKeyScope.READ)
