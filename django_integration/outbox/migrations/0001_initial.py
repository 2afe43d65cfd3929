"""Create ``jwt_revocation_outbox`` with the producer's own DDL (its indexes, and on PostgreSQL
its NOTIFY trigger), so the relay finds exactly the table it expects."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations

from jwt_revocation.django.outbox._writer import SUPPORTED_VENDORS
from jwt_revocation.producer.outbox import TABLE_NAME, outbox_statements


def create_table(apps: Any, schema_editor: Any) -> None:
    """Run the outbox DDL for this database's vendor."""
    vendor = schema_editor.connection.vendor
    if vendor not in SUPPORTED_VENDORS:
        raise RuntimeError(f"the outbox supports {' and '.join(SUPPORTED_VENDORS)}, not {vendor}")
    for statement in outbox_statements(vendor):
        schema_editor.execute(statement, params=None)


def drop_table(apps: Any, schema_editor: Any) -> None:
    """Drop the table (and on PostgreSQL its trigger function)."""
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE_NAME}", params=None)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {TABLE_NAME}_notify()", params=None)


class Migration(migrations.Migration):
    """The outbox table."""

    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[Any]] = [migrations.RunPython(create_table, drop_table)]
