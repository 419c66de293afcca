"""System checks of the aicost app."""

from django.core.checks import Tags, register

from aicost.schema_guard import schema_report


@register(Tags.database, deploy=True)
def check_schema_matches_models(app_configs=None, databases=None, **kwargs):
    """aicost.E001 to E009: the live schema of each database checked equals what the models expect.

    A database check that runs only with `check --deploy --database <alias>`, so `migrate`
    (which runs the ordinary checks) is never blocked by the very drift it is about to fix."""
    findings = []
    for alias in databases or []:
        findings += schema_report(using=alias).findings
    return findings
