"""The revocation source of this process: its own sidecar, built and started on first use,
once per process, stopped at exit; or, with ``SHARED_PATH``, the host writer's shared file.

Contract:

1. :func:`process_verifier` returns this process's verifier, whose sidecar it starts on the
   first call in the process and waits for, at most ``START_TIMEOUT``; later calls return at
   once, and while the sidecar cannot decide the verifier fails closed (503).
2. Per process, by pid: a process forked from one that had a sidecar (gunicorn ``--preload``,
   uWSGI without ``lazy-apps``) builds and starts its own on its first request, and never uses
   the parent's. The sidecar's own resumption after a fork is not relied upon, and the master
   of a pre-fork server, which serves no request, never starts one.
3. Why lazily rather than in ``AppConfig.ready``: ``ready`` also runs in ``manage.py migrate``,
   ``shell`` and every other command, and in the master process of ``--preload``, where a
   sidecar is useless or belongs to the wrong process. The first request of each worker pays
   the catch-up instead (0.4 s on a small local topic, measured; see the README).
4. A sidecar that fails to start (topic missing, broker unreachable) is dropped; the next try
   comes no sooner than ``RETRY_AFTER`` seconds later, and until then every request gets 503
   at once rather than waiting on the broker again.
5. The sidecar is stopped by ``atexit`` in the process that started it.
6. With ``SHARED_PATH`` (``JWT_REVOCATION['SHARED_PATH']`` or ``JWT_REVOCATION_SHARED_PATH``)
   no sidecar is built: the verifier reads
   :class:`~jwt_revocation.consumer.SharedRevocations` at that path, opened once per process
   (by pid), with no socket and no Kafka consumer. It never waits: while the file is missing,
   refused, not caught up, stopped or stale, every request gets 503 at once, and it serves
   again by itself when a (re)started host writer is caught up.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from jwt_revocation.consumer import (
    RevocationSidecar,
    RevocationVerifier,
    SharedRevocations,
    SidecarStatus,
    claims_only,
)
from jwt_revocation.shared import RevocationError, SidecarUnavailableError

from ._settings import DjangoRevocationSettings, revocation_settings

logger = logging.getLogger(__name__)

RETRY_AFTER = 5.0
"""Seconds between two attempts to start a sidecar that failed to start."""


@dataclass
class ProcessSidecar:
    """This process's sidecar (None when it reads the host's shared file) and verifier."""

    pid: int
    sidecar: RevocationSidecar | None
    verifier: RevocationVerifier
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_lock = threading.Lock()
_current: ProcessSidecar | None = None
_failed_at: tuple[int, float] | None = None
"""The pid and monotonic time of the last failed start."""


def process_verifier() -> RevocationVerifier:
    """This process's verifier; its sidecar is started, caught up, on the first call.

    Raises :class:`~jwt_revocation.shared.SidecarUnavailableError` when the sidecar could not be
    started or did not catch up within ``START_TIMEOUT``.
    """
    return ready_process().verifier


def ready_process() -> ProcessSidecar:
    """:func:`process_verifier`, with the sidecar it reads."""
    current = _current
    if current is None or current.pid != os.getpid():
        current = _build()
    if not current.started:
        _start(current)
    return current


def process_sidecar() -> RevocationSidecar | None:
    """This process's sidecar if one was built here, for health checks; None otherwise."""
    current = _current
    return current.sidecar if current is not None and current.pid == os.getpid() else None


def stop_process_sidecar() -> None:
    """Stop and forget this process's sidecar, if it has one; the next use builds a new one."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None and current.pid == os.getpid() and current.sidecar is not None:
        current.sidecar.stop()


def _build() -> ProcessSidecar:
    global _current
    with _lock:
        current = _current
        pid = os.getpid()
        if current is not None and current.pid == pid:
            return current
        if current is not None and current.sidecar is not None:
            # Inherited through a fork: the sidecar may have resumed itself here (its rule 9);
            # this process gets one of its own, as a worker started fresh would.
            current.sidecar.stop()
        if _failed_at is not None and _failed_at[0] == pid:
            wait = RETRY_AFTER - (time.monotonic() - _failed_at[1])
            if wait > 0:
                raise SidecarUnavailableError(
                    f"the sidecar of process {pid} failed to start; next try in {wait:.1f} s",
                    reason="failed",
                )
        config = revocation_settings()
        if config.shared_path is not None:
            current = ProcessSidecar(pid, None, _verifier(config, _shared(config)), started=True)
            _current = current
            logger.info("reading the host's shared state path=%s pid=%d", config.shared_path, pid)
            return current
        sidecar = RevocationSidecar.from_settings(config.revocation, name=f"django-{pid}")
        current = ProcessSidecar(pid, sidecar, _verifier(config, sidecar))
        _current = current
        atexit.register(_stop_at_exit, current)
        return current


def _shared(config: DjangoRevocationSettings) -> SharedRevocations:
    """Rule 6: the reader of the host's file; it opens the file itself when it appears."""
    assert config.shared_path is not None
    try:
        return SharedRevocations(
            config.shared_path,
            max_token_lifetime=config.revocation.max_token_lifetime.total_seconds(),
            max_clock_skew=config.revocation.max_clock_skew.total_seconds(),
            max_staleness=config.shared_staleness,
            owner=config.shared_owner,
        )
    except RevocationError as err:  # an owner that is no user of this host
        raise SidecarUnavailableError(
            f"cannot read the shared state at {config.shared_path}: {err}", reason="failed"
        ) from err


def _verifier(
    config: DjangoRevocationSettings, source: RevocationSidecar | SharedRevocations
) -> RevocationVerifier:
    from rest_framework_simplejwt.settings import api_settings

    return RevocationVerifier(
        source,
        # Only decide_claims is used: simplejwt has checked the signature with its own keys.
        key_resolver=claims_only,
        algorithms=[api_settings.ALGORITHM],
        leeway=api_settings.LEEWAY,
        user_claim=api_settings.USER_ID_CLAIM,
        session_claim=config.session_claim,
        cache_size=0,
    )


def _start(current: ProcessSidecar) -> None:
    with current.lock:
        if current.started or current.sidecar is None:
            return
        started = time.monotonic()
        try:
            current.sidecar.start(timeout=revocation_settings().start_timeout)
        except SidecarUnavailableError as err:
            if err.reason != "loading":
                _failed(current, err)
                raise
            # Still replaying in the background: the verifier answers 503 until it is done.
            current.started = True
            raise
        except RevocationError as err:
            _failed(current, err)
            raise SidecarUnavailableError(
                f"sidecar {current.sidecar.name} cannot start: {err}", reason="failed"
            ) from err
        current.started = True
        logger.info(
            "sidecar %s caught up in %.3f s pid=%d",
            current.sidecar.name,
            time.monotonic() - started,
            current.pid,
        )


def _failed(current: ProcessSidecar, err: RevocationError) -> None:
    global _current, _failed_at
    assert current.sidecar is not None
    logger.error("sidecar %s cannot start: %s", current.sidecar.name, err)
    current.sidecar.stop()
    with _lock:
        if _current is current:
            _current = None
        _failed_at = (current.pid, time.monotonic())


def _stop_at_exit(current: ProcessSidecar) -> None:
    sidecar = current.sidecar
    if (
        current.pid == os.getpid()
        and sidecar is not None
        and sidecar.status is not SidecarStatus.STOPPED
    ):
        sidecar.stop()
