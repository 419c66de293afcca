"""System checks of the aicost app."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.core.checks import Tags, register

from schemaguard.guard import schema_report

_guard_paused: ContextVar[bool] = ContextVar("aicost_schema_guard_check_paused", default=False)


@contextmanager
def schema_guard_check_paused() -> Iterator[None]:
    """Leave the guard out of the checks run inside (migrate's own pre-checks: it must apply on the
    very drift the guard reports)."""
    token = _guard_paused.set(True)
    try:
        yield
    finally:
        _guard_paused.reset(token)


@register(Tags.database)
def check_schema_matches_models(app_configs=None, databases=None, **kwargs):
    """aicost.E001 to E010, E013 and the warnings: the live schema of each database checked equals what the
    models expect.

    A database check: it runs for the databases a command names. `check` names `default` unless told
    otherwise (schemaguard/management/commands/check.py); the other commands name none, except `migrate`,
    which pauses it (schemaguard/management/commands/migrate.py). So no command is blocked by the drift
    that `migrate` or `schema_repair` are about to fix."""
    if _guard_paused.get():
        return []
    findings = []
    for alias in databases or []:
        findings += schema_report(using=alias).findings
    return findings
