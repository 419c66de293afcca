# The log keeps the model name as sent (sent_model_name) beside model_name, the model a call is counted
# under (the priced model it matched). Rows stored before keep "" (their name as sent was model_name).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0011_rollup_delta_rows_replace_pending"),
    ]

    operations = [
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
    ]
