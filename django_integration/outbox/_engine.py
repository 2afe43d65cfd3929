"""A SQLAlchemy engine on the database Django's ``DATABASES`` names, for the relay.

``JWT_REVOCATION['DATABASE_URL']`` wins when set. Otherwise the URL is built from the alias's
``ENGINE``, ``NAME``, ``USER``, ``PASSWORD``, ``HOST``, ``PORT`` and the libpq parameters in
``OPTIONS`` (``sslmode``, ``options``...), with the psycopg 3 driver on PostgreSQL, so the relay
can ``LISTEN``. The URL is only ever shown with its password masked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine, create_engine

from jwt_revocation.django._settings import revocation_settings
from jwt_revocation.producer.outbox import require_sync_url
from jwt_revocation.shared import ConfigurationError
from jwt_revocation.shared._extras import needs_extra

with needs_extra("django", __name__):
    from django.conf import settings
    from django.db import connections

# Keys of a PostgreSQL alias's OPTIONS that Django consumes itself rather than libpq.
_DJANGO_OPTIONS = {
    "isolation_level",
    "server_side_binding",
    "pool",
    "assume_role",
    "cursor_factory",
}


def relay_url(alias: str = "default") -> URL:
    """The SQLAlchemy URL of ``alias`` (or of ``JWT_REVOCATION['DATABASE_URL']``)."""
    configured = revocation_settings().revocation.database_url
    if configured is not None:
        return require_sync_url(configured.get_secret_value(), "JWT_REVOCATION['DATABASE_URL']")
    database: dict[str, Any] = settings.DATABASES[alias]
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return URL.create("sqlite", database=str(database["NAME"]))
    if vendor == "postgresql":
        options = database.get("OPTIONS") or {}
        query = {
            str(key): str(value)
            for key, value in options.items()
            if key not in _DJANGO_OPTIONS and isinstance(value, str | int)
        }
        port = database.get("PORT")
        return URL.create(
            "postgresql+psycopg",
            username=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None,
            port=int(port) if port else None,
            database=database.get("NAME") or None,
            query=query,
        )
    raise ConfigurationError(
        f"the relay supports PostgreSQL and SQLite; database {alias!r} is {vendor}"
    )


def relay_engine(alias: str = "default") -> Engine:
    """An engine on :func:`relay_url`."""
    return create_engine(relay_url(alias))
