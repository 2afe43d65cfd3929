"""Optional dependencies: a part whose extra is missing raises one clear error, and the parts
that need no extra import none of them.

Each case runs a fresh interpreter in which the extra's modules are blocked
(``sys.modules[name] = None`` makes ``import name`` raise ``ModuleNotFoundError``, as for a
module that is not installed). tests/integration/test_wheel.py checks the same in a real
virtualenv without the extras.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from jwt_revocation.shared import MissingExtraError, RevocationError
from jwt_revocation.shared._extras import EXTRAS, needs_extra

OPTIONAL = sorted(set().union(*EXTRAS.values()))


def _run(blocked: list[str], code: str) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=False
    )


def test_a_missing_module_of_the_extra_is_a_missing_extra_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(MissingExtraError) as raised, needs_extra("redis", "some.module"):
        import redis  # noqa: F401

    assert (raised.value.extra, raised.value.module, raised.value.name) == ("redis",) * 3
    assert str(raised.value) == (
        "some.module needs the [redis] extra (redis is not installed): "
        'pip install "jwt-revocation[redis]"'
    )


def test_the_error_names_the_pip_install_and_is_an_import_error_and_a_revocation_error() -> None:
    blocked = _run(["redis"], "import jwt_revocation.consumer._redis_blocklist")

    assert blocked.returncode == 1
    last = blocked.stderr.strip().splitlines()[-1]
    assert last == (
        "jwt_revocation.shared._errors.MissingExtraError: jwt_revocation.consumer._redis_blocklist"
        ' needs the [redis] extra (redis is not installed): pip install "jwt-revocation[redis]"'
    )
    assert issubclass(MissingExtraError, ImportError)
    assert issubclass(MissingExtraError, RevocationError)


def test_a_missing_module_of_no_extra_is_raised_unchanged() -> None:
    with pytest.raises(ModuleNotFoundError) as raised, needs_extra("redis", __name__):
        import no_such_module_xyz  # type: ignore[import-not-found]  # noqa: F401

    assert not isinstance(raised.value, MissingExtraError)


@pytest.mark.parametrize(
    ("blocked", "statement", "extra"),
    [
        ("starlette", "from jwt_revocation.consumer import SidecarHTTPServer", "http"),
        ("uvicorn", "from jwt_revocation.shared import HTTPLimits", "http"),
        ("prometheus_client", "from jwt_revocation.consumer import SidecarCollector", "metrics"),
        ("redis", "from jwt_revocation.consumer import RedisBlocklist", "redis"),
        (
            "redis",
            "from jwt_revocation.consumer import RedisSnapshots; RedisSnapshots('redis://x')",
            "redis",
        ),
        ("starlette", "import jwt_revocation.consumer.fastapi", "fastapi"),
        ("flask", "import jwt_revocation.consumer.flask", "flask"),
        ("django", "import jwt_revocation.django", "django"),
        ("rest_framework", "import jwt_revocation.django.authentication", "django"),
        ("sqlalchemy", "import jwt_revocation.producer.outbox", "outbox"),
        ("sqlalchemy", "from jwt_revocation.producer import SecurityEventReceiver", "outbox"),
        ("sqlalchemy", "from jwt_revocation import RevocationOutbox", "outbox"),
        ("redis", "from jwt_revocation.cli import main", "cli"),
        ("starlette", "from jwt_revocation.cli import main", "cli"),
    ],
)
def test_each_part_names_its_extra(blocked: str, statement: str, extra: str) -> None:
    run = _run([blocked], statement)

    assert run.returncode == 1, run.stderr
    assert f'pip install "jwt-revocation[{extra}]"' in run.stderr.splitlines()[-1]
    assert "MissingExtraError" in run.stderr.splitlines()[-1]


def test_the_verifier_the_sidecar_and_the_publisher_need_no_extra() -> None:
    code = (
        "from jwt_revocation import RevocationPublisher, RevocationSidecar, RevocationVerifier\n"
        "from jwt_revocation import SharedRevocations, Verdict, ensure_topic\n"
        "import jwt_revocation.consumer, jwt_revocation.producer, jwt_revocation.shared\n"
        "print('imported')"
    )
    run = _run(OPTIONAL, code)

    assert run.stdout.strip() == "imported", run.stderr


def test_importing_the_consumer_loads_no_kafka_and_no_extra() -> None:
    """kafka-python (about 180 ms) is imported when a reader starts, not with the package."""
    code = (
        "import sys, jwt_revocation.consumer\n"
        "print(sorted({m.partition('.')[0] for m in sys.modules} & "
        f"{set(OPTIONAL) | {'kafka'}!r}))"
    )
    run = _run([], code)

    assert run.stdout.strip() == "[]", run.stderr
