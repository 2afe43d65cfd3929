"""What every group of rows builds on: the run's broker, Redis and sizes, tokens and events.

:class:`Bench` creates a fresh topic per use and deletes it at the end of the run; Redis keys
live under the per-run prefix ``bench:{run}:`` and are deleted too. Tokens are HS256 and shaped
like typical access tokens; events are mostly logouts, as on a real topic.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import redis
from kafka.admin import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError

from jwt_revocation.consumer import RevocationSidecar, RevocationState, RevocationVerifier
from jwt_revocation.shared import (
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    ensure_topic,
)

from .harness import Sizes

KEY = "benchmark-signing-key-" + "b" * 42
ISSUER = "https://auth.example.com"
AUDIENCE = "api"
LIFETIME = timedelta(hours=1)
Event = TokenRevoked | UserTokensRevoked | UserDeleted


@dataclass
class Bench:
    """What the rows share: sizes, the broker, Redis, and what to clean up afterwards."""

    sizes: Sizes
    bootstrap: str
    redis: redis.Redis
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    topics: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """The prefix of every Redis key of this run, deleted by :meth:`cleanup`."""
        return f"bench:{self.run}"

    def topic(self, label: str, partitions: int = 6) -> str:
        """A fresh topic for one row, deleted by :meth:`cleanup`."""
        name = f"bench-{label}-{self.run}"
        ensure_topic(self.bootstrap, name, max_token_lifetime=LIFETIME, partitions=partitions)
        self.topics.append(name)
        return name

    def sidecar(self, topic: str, name: str, **kwargs: Any) -> RevocationSidecar:
        """A started sidecar on ``topic``."""
        sidecar = RevocationSidecar(
            self.bootstrap, topic, max_token_lifetime=LIFETIME, name=name, **kwargs
        )
        sidecar.start(timeout=600)
        return sidecar

    def broker_pid(self) -> int | None:
        """The local broker's process id, when ``scripts/services.sh`` started it; else None.

        Read from ``kafka.pid`` in ``$JWT_REVOCATION_SERVICES_DIR`` (default ``.services/``),
        where the script keeps it, and only for a broker on this machine.
        """
        if not self.bootstrap.startswith(("127.0.0.1:", "localhost:")):
            return None
        root = Path(__file__).resolve().parents[1]
        folder = Path(os.environ.get("JWT_REVOCATION_SERVICES_DIR", root / ".services"))
        try:
            pid = int((folder / "kafka.pid").read_text(encoding="ascii"))
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"kafka.Kafka" in command else None

    def cleanup(self) -> None:
        """Delete this run's Redis keys and topics (the keys first: they need no broker)."""
        prefix = f"{self.prefix}:*"
        batch = list(self.redis.scan_iter(match=prefix, count=10_000))
        while batch:
            self.redis.unlink(*batch[:10_000])
            batch = batch[10_000:] or list(self.redis.scan_iter(match=prefix, count=10_000))
        if self.topics:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                admin.delete_topics(self.topics)
            except UnknownTopicOrPartitionError:
                pass  # the others are deleted; one already gone is what cleaning up wants
            finally:
                admin.close()


# -- tokens and events ----------------------------------------------------------------------


def token(jti: str, user: str, *, now: float, ttl: int = 600, key: str = KEY) -> str:
    """An HS256 token shaped like a typical access token."""
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "jti": jti,
        "iat": int(now) - 5,
        "exp": int(now) + ttl,
        "scope": "read write",
    }
    return jwt.encode(claims, key, algorithm="HS256")


def token_pool(now: float) -> list[str]:
    """1,000 valid tokens of 1,000 users, which the verify rows cycle through."""
    return [token(str(uuid.uuid4()), f"user-{i}", now=now) for i in range(1000)]


def decode(tok: str) -> dict[str, Any]:
    """PyJWT alone, with the checks the verifier asks for."""
    return jwt.decode(
        tok,
        KEY,
        algorithms=["HS256"],
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require": ["exp"]},
    )


def verifier(source: RevocationSidecar, *, cache_size: int) -> RevocationVerifier:
    """The verifier under test."""
    return RevocationVerifier(
        source,
        key=KEY,
        algorithms=["HS256"],
        issuer=ISSUER,
        audience=AUDIENCE,
        cache_size=cache_size,
    )


def logout(jti: str, user: str, exp: float) -> TokenRevoked:
    """A logout event."""
    return TokenRevoked(
        issuer="bench",
        occurred_at=datetime.now(UTC),
        jti=jti,
        user_id=user,
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


def mixed_events(count: int, now: float) -> Iterator[Event]:
    """Mostly logouts, with password changes (4 %) and deletions (1 %) of 100,000 users."""
    at = datetime.fromtimestamp(now, UTC)
    for i in range(count):
        user = f"user-{i % 100_000}"
        if i % 100 == 0:
            yield UserDeleted(issuer="bench", occurred_at=at, user_id=user, at=at)
        elif i % 25 == 0:
            yield UserTokensRevoked(issuer="bench", occurred_at=at, user_id=user, not_before=at)
        else:
            yield logout(str(uuid.uuid4()), user, now + 600 + i % 3000)


# -- revoked jtis, held locally or in Redis --------------------------------------------------


def fill(state: RevocationState, count: int, now: float) -> list[str]:
    """Revoke ``count`` fresh jtis in ``state``; return them."""
    jtis = [str(uuid.uuid4()) for _ in range(count)]
    with state.lock:
        for i, jti in enumerate(jtis):
            state.apply(logout(jti, f"user-{i % 100_000}", now + 600 + i % 3000), now)
    return jtis


@contextmanager
def redis_blocklist(bench: Bench, jtis: list[str], now: float) -> Iterator[tuple[str, float]]:
    """The same jtis as a classic Redis blocklist; yield its key prefix and bytes per key."""
    prefix = f"{bench.prefix}:jti:"
    r = bench.redis
    before = int(r.info("memory")["used_memory"])
    for start in range(0, len(jtis), 10_000):
        pipe = r.pipeline(transaction=False)
        for jti in jtis[start : start + 10_000]:
            pipe.set(prefix + jti, 1, exat=int(now) + 600)
        pipe.execute()
    after = int(r.info("memory")["used_memory"])
    try:
        yield prefix, (after - before) / len(jtis)
    finally:
        keys = [prefix + jti for jti in jtis]
        for start in range(0, len(keys), 10_000):
            r.unlink(*keys[start : start + 10_000])
