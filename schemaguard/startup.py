"""Refusing to serve on a broken schema: shared by runserver and gunicorn's master process."""

import os
import sys

from schemaguard.guard import schema_report

SKIP_VARIABLE = "AICOST_SKIP_SCHEMA_GUARD"


def schema_guard_skipped() -> bool:
    return os.environ.get(SKIP_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


def schema_guard_or_exit(*, using: str = "default", stream=sys.stderr) -> None:
    """Print every finding and exit with status 3 when the schema is broken; return when healthy."""
    if schema_guard_skipped():
        stream.write(f"aicost: {SKIP_VARIABLE} is set: serving WITHOUT checking the database schema.\n")
        return
    report = schema_report(using=using)
    for warning in report.warnings:
        stream.write(f"aicost: warning {warning.id}: {warning.msg}\n")
    if report.healthy:
        return
    stream.write(f"aicost: refusing to start: the database schema does not match the models ({using}).\n")
    for finding in report.errors:
        stream.write(f"  {finding.id}: {finding.msg}\n")
        if finding.hint:
            stream.write(f"    fix: {finding.hint}\n")
    stream.write(f"Repair with `{report.repair_command}`, or set {SKIP_VARIABLE}=1 to start anyway.\n")
    stream.flush()
    raise SystemExit(3)
