"""Names a package exports without importing them until first use (PEP 562).

A package whose parts need an extra (the HTTP server, Redis, SQLAlchemy), or cost import time
nobody asked for, lists them here instead of importing them at the top::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"RedisBlocklist": "._redis_blocklist"})

``from package import RedisBlocklist`` then imports ``package._redis_blocklist`` and caches
the name in the package's namespace; without the extra it raises the module's
:class:`~jwt_revocation.shared.MissingExtraError`. ``moved`` maps names that left a package's ``__all__`` to the
module that has them now: they still resolve, with a ``DeprecationWarning`` naming the new
place, and ``dir()`` no longer lists them.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    namespace: dict[str, Any],
    lazy: Mapping[str, str],
    moved: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose globals are ``namespace``.

    ``lazy`` and ``moved`` map a name to the (relative or absolute) module that defines it.
    """
    moved = dict(moved or {})

    def get_attribute(name: str) -> Any:
        if name in lazy:
            value = getattr(importlib.import_module(lazy[name], package), name)
            namespace[name] = value
            return value
        if name in moved:
            module = importlib.import_module(moved[name], package)
            warnings.warn(
                f"{package}.{name} is no longer public; import it from {module.__name__} "
                "(it may change without notice)",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def names() -> list[str]:
        return sorted(set(namespace) | set(lazy))

    return get_attribute, names
