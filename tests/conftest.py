"""Settings for the whole suite: the Hypothesis profile of the compatibility runs.

`make test` runs the unit tests a second and third time, on the other Pythons the project
supports (``make other-pythons``), with ``--hypothesis-profile=compat``. Those runs show that
the code imports and behaves the same there, with the declared lowest dependency versions on
one of them; the rules themselves are searched hard by the main run. So under ``compat`` every
property test draws at most :data:`COMPAT_EXAMPLES` examples, its own ``@settings`` count
included (a profile alone would not lower an explicit ``max_examples``), and no deadline.
Without the option (the main run, and any plain ``pytest``) nothing here changes a test.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

COMPAT = "compat"
COMPAT_EXAMPLES = 100
"""The examples a property test draws in a compatibility run (the main run's counts go up to
10,000)."""

settings.register_profile(COMPAT, max_examples=COMPAT_EXAMPLES, deadline=None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under the ``compat`` profile, cap each property test's examples at COMPAT_EXAMPLES."""
    if config.getoption("hypothesis_profile", None) != COMPAT:
        return
    for item in items:
        test = getattr(item, "obj", None)
        test = getattr(test, "__func__", test)  # a method's function holds the settings
        if not getattr(test, "is_hypothesis_test", False):
            continue
        # Hypothesis reads the settings @given/@settings attached to the test when it runs it.
        current = test._hypothesis_internal_use_settings  # type: ignore[union-attr]
        assert isinstance(current, settings), f"{item.nodeid}: Hypothesis changed its internals"
        if current.max_examples > COMPAT_EXAMPLES or current.deadline is not None:
            test._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
                current, max_examples=min(current.max_examples, COMPAT_EXAMPLES), deadline=None
            )
