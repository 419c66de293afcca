# The log keeps the model name as sent (sent_model_name) beside model_name, the model a call is counted
# under (the priced model it matched). Rows stored before keep "" (their name as sent was model_name).

from django.db import migrations, models


def foreign_key_checks_now(apps, schema_editor):
    """PostgreSQL cannot ALTER a table with deferred foreign-key checks pending (rows written earlier
    in the same transaction, as when tests migrate): run those checks first."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0012_usage_log_token_kinds"),
    ]

    operations = [
        migrations.RunPython(foreign_key_checks_now, migrations.RunPython.noop, elidable=True),
        migrations.AddField(
            model_name="usagelog",
            name="sent_model_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                help_text="The model name as the client sent it (empty: rows stored before it was kept; then model_name).",
                max_length=100,
            ),
        ),
        # Backwards the column is dropped first: the same checks before that ALTER.
        migrations.RunPython(migrations.RunPython.noop, foreign_key_checks_now, elidable=True),
    ]
