"""Migration operations of billing's own: indexes on the usage table built without locking it.

CREATE INDEX takes a lock that stops every write to the table until it is built: minutes on
an operator's table of tens of millions of records, while the gateway's recorders wait. On
PostgreSQL these build CONCURRENTLY (outside a transaction: the migration says atomic = False);
other databases (SQLite, embedded mode) build them the plain way.
"""

from typing import Any

from django.db import migrations


class AddIndexWithoutLocking(migrations.AddIndex):
    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)
