# The running counters now live in usage's ai_usage_counter (usage.0010 copied them there first).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0002_seed_model_prices"),
        ("usage", "0010_usage_counter"),
    ]

    operations = [
        migrations.RemoveField(model_name="modelpricing", name="total_calls"),
        migrations.RemoveField(model_name="modelpricing", name="total_cost"),
        migrations.RemoveField(model_name="modelpricing", name="current_month_cost"),
        migrations.RemoveField(model_name="modelpricing", name="current_month"),
    ]
