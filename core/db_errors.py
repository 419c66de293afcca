"""Telling apart the database errors that must not become a bare 500."""

import re

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, ProgrammingError

# What an operator runs to repair a broken schema (the schema guard's command), named in every
# message that reports a missing table or column.
REPAIR_COMMAND = "python manage.py schema_repair --apply"

_MISSING_RELATION = re.compile(r'relation "([^"]+)" does not exist|no such table: (\S+)')
_MISSING_COLUMN = re.compile(r'column "?([\w.]+)"? does not exist|no such column: (\S+)|has no column named (\S+)')


def _message(error: BaseException) -> str:
    return str(error.__cause__ or error)


def missing_schema_object(error: BaseException) -> str | None:
    """The table or column a query found missing ('ai_model_usage_log'), or None for other errors."""
    if not isinstance(error, ProgrammingError | OperationalError):
        return None
    message = _message(error)
    for pattern in (_MISSING_RELATION, _MISSING_COLUMN):
        match = pattern.search(message)
        if match:
            return next(group for group in match.groups() if group)
    return None


def database_unavailable(error: BaseException) -> bool:
    """The server cannot be reached or dropped the connection (restart, failover, network)."""
    if missing_schema_object(error) is not None:
        return False
    # The driver's own errors too: a COPY runs on psycopg's cursor, outside Django's error wrapper, so a
    # restart mid-COPY raises psycopg.errors.AdminShutdown (an OperationalError of psycopg's).
    return isinstance(error, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError) or (
        isinstance(error, DatabaseError) and "connection" in _message(error).lower()
    )
