"""The ``jwt-revocation`` command line: ties the publisher and the sidecar together for operators."""

from ._main import main

__all__ = ["main"]
