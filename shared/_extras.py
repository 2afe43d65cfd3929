"""Optional dependencies: which extra brings which module, and the one error a missing one gives.

The base install holds what an embedded verifier and a publisher need (kafka-python, PyJWT,
pydantic, xxhash); everything else comes with an extra (pyproject.toml lists them). A module
that needs one imports it inside :func:`needs_extra`::

    with needs_extra("redis", __name__):
        import redis

so that, when it is missing, the import raises :class:`MissingExtraError` naming the
``pip install "jwt-revocation[redis]"`` to run instead of a bare ``ModuleNotFoundError``. A
missing module that is *not* one of the extra's is re-raised unchanged: it is a broken install
or a bug, and no extra would fix it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import MissingExtraError

EXTRAS: dict[str, frozenset[str]] = {
    "http": frozenset({"starlette", "uvicorn", "httptools", "prometheus_client", "anyio"}),
    "metrics": frozenset({"prometheus_client"}),
    "redis": frozenset({"redis", "hiredis"}),
    "fastapi": frozenset({"fastapi", "starlette", "anyio"}),
    "flask": frozenset({"flask", "werkzeug"}),
    "django": frozenset({"django", "rest_framework", "rest_framework_simplejwt"}),
    "outbox": frozenset(
        {"starlette", "uvicorn", "httptools", "prometheus_client", "anyio", "sqlalchemy"}
        | {"psycopg", "greenlet"}
    ),
    # The `jwt-revocation` command serves HTTP, writes snapshots to Redis and runs relays.
    "cli": frozenset(
        {"starlette", "uvicorn", "httptools", "prometheus_client", "anyio", "sqlalchemy"}
        | {"psycopg", "greenlet", "redis", "hiredis"}
    ),
}
"""Each extra and the top-level modules it installs (pyproject.toml's optional dependencies)."""


@contextmanager
def needs_extra(extra: str, needed_by: str) -> Iterator[None]:
    """Turn a missing module of ``extra`` imported in the block into :class:`MissingExtraError`.

    ``needed_by`` is the importing module's name (``__name__``), shown in the message. A
    :class:`MissingExtraError` raised deeper for a module this extra also brings is re-raised
    naming this one: the outermost part knows best what to install (the command line names
    ``[cli]``, not the first of the three extras it needs).
    """
    modules = EXTRAS[extra]
    try:
        yield
    except (ModuleNotFoundError, MissingExtraError) as err:
        missing = (err.name or "").partition(".")[0]
        if missing not in modules:
            raise
        raise MissingExtraError(extra, missing, needed_by) from None
