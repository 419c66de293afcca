"""The price generation row and the triggers that change it with every write to a table the price
book reads (pricing.generation). The DDL is frozen here; pricing.generation writes the same."""

from django.db import migrations, models

TABLES = (
    "ai_model_pricing",
    "ai_model_price_version",
    "ai_model_price_version_tier",
    "ai_model_name_pattern",
    "ai_exchange_rate",
)

POSTGRESQL_FUNCTION = (
    "CREATE OR REPLACE FUNCTION ai_price_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO ai_price_generation (id, generation) VALUES (1, nextval('ai_price_generation_seq')) "
    "ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation; RETURN NULL; END $$"
)


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS ai_price_generation_seq")
        schema_editor.execute(POSTGRESQL_FUNCTION)
        schema_editor.execute(
            "INSERT INTO ai_price_generation (id, generation) VALUES (1, nextval('ai_price_generation_seq'))"
        )
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_price_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ai_price_generation_bump()"
            )
    elif vendor == "sqlite":
        schema_editor.execute("INSERT INTO ai_price_generation (id, generation) VALUES (1, random())")
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_price_generation_{event} AFTER {event.upper()} ON {table} BEGIN "
                    "INSERT OR REPLACE INTO ai_price_generation (id, generation) VALUES (1, random()); END"
                )


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_price_generation ON {table}")
        elif vendor == "sqlite":
            for event in ("insert", "update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_price_generation_{event}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS ai_price_generation_bump()")
        schema_editor.execute("DROP SEQUENCE IF EXISTS ai_price_generation_seq")


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0009_budget_currency"),
    ]

    operations = [
        migrations.CreateModel(
            name="PriceGeneration",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False, verbose_name="id"),
                ),
                ("generation", models.BigIntegerField(verbose_name="generation")),
            ],
            options={
                "verbose_name": "price generation",
                "verbose_name_plural": "price generations",
                "db_table": "ai_price_generation",
            },
        ),
        migrations.RunPython(forward, backward),
    ]
