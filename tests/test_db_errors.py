"""Which database errors are an outage (503 database_unavailable), not a bare 500."""

import psycopg
import pytest
from django.db import OperationalError, ProgrammingError

from core.api.exceptions import api_exception_handler
from core.db_errors import database_unavailable


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("server closed the connection unexpectedly"),
        # Raised by a COPY on psycopg's own cursor (usage/dialects.py), which Django does not wrap: seen when
        # PostgreSQL restarted in the middle of a batch's COPY (bench.load --restart-postgres-at).
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
    ],
)
def test_a_lost_connection_is_an_outage(error):
    assert database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        ProgrammingError('relation "ai_model_usage_log" does not exist'),
        psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
        ValueError("not a database error"),
    ],
)
def test_other_errors_are_not(error):
    assert not database_unavailable(error)


def test_the_api_answers_a_driver_level_outage_with_a_503():
    response = api_exception_handler(
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"), context={}
    )
    assert response is not None
    assert (response.status_code, response.data["error"]["code"]) == (503, "database_unavailable")
    assert response["Retry-After"] == "5"
