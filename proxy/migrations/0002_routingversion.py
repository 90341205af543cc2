from typing import Any

from django.db import migrations, models


def create_row(apps: Any, schema_editor: Any) -> None:
    apps.get_model("proxy", "RoutingVersion").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("proxy", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="RoutingVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
