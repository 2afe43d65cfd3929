"""Snapshots of a sidecar's state in Redis: a warm start replays only the events after them.

Key layout, with ``prefix`` ``jwt-revocation`` by default::

    {prefix}:{topic}:snapshot:latest   the id of the newest complete snapshot
    {prefix}:{topic}:snapshot:{id}     a hash: "header" (JSON), "body" (zlib-compressed JSON)
                                       and, when signed, "mac"

A writer stores the new hash and moves ``latest`` to it in one MULTI/EXEC transaction, so a
reader sees the old snapshot or the new one, never part of one. Every snapshot expires after
``ttl``; the one it replaces expires ``grace`` seconds later, so a reader that has just read its
id still finds it.

The header says what the body holds: the topic, the offset of the next event of every
partition (every event before it is in the body, none after it), when it was taken, the
``max_token_lifetime`` and ``max_clock_skew`` the state was kept with, the entry counts, the
body's SHA-256 and, when signed, the ``key_id`` of the key that signed it. The body is
``{"jtis": [[exp, [jti, ...]], ...], "cutoffs": {user: t}, "deletions": {user: t}}``, and,
only when they hold entries, ``"issuer_jtis": {iss: [[exp, [jti, ...]], ...]}``,
``"sessions": {sid: t}`` and ``"all_tokens": [[iss or null, t], ...]`` (with their counts, as
``session_revoked`` and ``all_tokens_revoked``, in the header's entries).

Signing. The SHA-256 catches corruption, not forgery: whoever can write to Redis can write a
snapshot that leaves a revoked jti out. A store given keys (:class:`SnapshotKeys`) therefore
signs every snapshot: ``mac`` is the lowercase hex HMAC-SHA256, under the key that the header's
``key_id`` names, of :func:`signed_message` of the exact bytes stored as ``header`` and
``body``::

    b"jwt-revocation snapshot v1\n" + u64be(len(header)) + header + u64be(len(body)) + body

The lengths (8 bytes, big-endian) fix where the header ends, so no byte can move between the
two; the key id is inside the signed header. A reader with keys checks the MAC before it reads
anything else, and refuses a snapshot with no ``mac`` as ``unsigned`` and one whose key id it
does not hold, whose header is unreadable or whose MAC differs (compared in constant time) as
``forged``. One key signs and every listed key verifies, so a key rotates by listing the new
key first and the old one after it until the old snapshots have expired. A key given as one
secret (``bytes``, or text with neither ``:`` nor ``,``) has the key id ``default``; any other
type is a ``ConfigurationError`` (:meth:`SnapshotKeys.from_key`). A reader without keys
ignores ``key_id`` and ``mac``: it trusts whoever can write to Redis.

:meth:`RedisSnapshots.load` refuses, with a :class:`SnapshotError` naming the reason, a
snapshot that is missing, unsigned or forged (with keys), corrupt (unreadable, or an instant,
duration or offset that is no finite number: an infinite cutoff would make every check of its
user raise), of another topic or format, or older than the caller's ``max_token_lifetime``;
:func:`resumable` then checks its offsets against the broker's. :class:`SnapshotWriter` writes
a sidecar's snapshots, on request or in the background. Keys never appear in a repr, a log line
or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from jwt_revocation.shared import (
    SCHEMA_VERSION,
    ConfigurationError,
    DurationLike,
    SnapshotError,
    numeric_date,
    parse_duration,
)

from ._state import StateSnapshot

if TYPE_CHECKING:
    import redis

# redis-py comes with the [redis] extra: it is imported when a RedisSnapshots is built, so a
# sidecar without snapshots runs without it.

logger = logging.getLogger(__name__)

FORMAT = 1
"""The layout of header and body; a reader refuses any other."""

MIN_KEY_BYTES = 32
"""The shortest snapshot key accepted: HMAC-SHA256's own output size."""
DEFAULT_KEY_ID = "default"
"""The key id of a key given as one secret (bytes, or text with neither ``:`` nor ``,``)."""
_SIGNED_CONTEXT = b"jwt-revocation snapshot v1\n"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KEY_ID_RULE = "1 to 64 of the characters A-Z a-z 0-9 . _ -"


def signed_message(header: bytes, body: bytes) -> bytes:
    """The bytes a snapshot's MAC covers: a fixed context, then header and body, each after
    its length as 8 bytes big-endian."""
    return b"".join(
        (
            _SIGNED_CONTEXT,
            len(header).to_bytes(8, "big"),
            header,
            len(body).to_bytes(8, "big"),
            body,
        )
    )


class SnapshotKeys:
    """HMAC-SHA256 keys for snapshots: one signs, every one verifies; secrets are never shown.

    ``keys`` maps key ids to secrets (bytes, or text used as its UTF-8 bytes), each at least
    32 bytes. ``signing_key_id`` names the key that signs; by default the first.
    :meth:`from_key` takes every other form a key is given in.
    """

    def __init__(
        self, keys: Mapping[str, bytes | str], *, signing_key_id: str | None = None
    ) -> None:
        if not isinstance(keys, Mapping):
            raise ConfigurationError(
                f"snapshot keys must map key ids to secrets; got {type(keys).__name__}"
            )
        if not keys:
            raise ConfigurationError("a snapshot key ring needs at least one key")
        secrets: dict[str, bytes] = {}
        for position, (key_id, secret) in enumerate(keys.items(), 1):
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                # Not echoed: a malformed entry may be a secret put in the wrong place.
                raise ConfigurationError(
                    f"snapshot key {position}: a key id must be {_KEY_ID_RULE}"
                )
            if not isinstance(secret, str | bytes | bytearray):
                # bytes(64) would be 64 zero bytes: a key anyone knows.
                raise ConfigurationError(
                    f"snapshot key {key_id!r}: a secret is bytes or str; got "
                    f"{type(secret).__name__}"
                )
            raw = secret.encode() if isinstance(secret, str) else bytes(secret)
            if len(raw) < MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"snapshot key {key_id!r} is shorter than {MIN_KEY_BYTES} bytes; make one "
                    "with `openssl rand -hex 32`"
                )
            secrets[key_id] = raw
        signer = next(iter(secrets)) if signing_key_id is None else signing_key_id
        if signer not in secrets:
            raise ConfigurationError(
                f"signing_key_id {signing_key_id!r} is none of the key ids {list(secrets)}"
            )
        self._secrets = secrets
        self.signing_key_id = signer
        """The id of the key that signs; the header names it as ``key_id``."""

    @classmethod
    def from_key(cls, key: SnapshotKeyLike, *, signing_key_id: str | None = None) -> SnapshotKeys:
        """Keys as :class:`RedisSnapshots` takes them: one secret as ``bytes`` (the natural
        type of an HMAC key), text (see :meth:`parse`), a mapping of key ids to secrets, or a
        ``SnapshotKeys``; anything else is a :class:`ConfigurationError`."""
        if isinstance(key, SnapshotKeys):
            if signing_key_id is not None and signing_key_id != key.signing_key_id:
                return cls(key._secrets, signing_key_id=signing_key_id)
            return key
        if isinstance(key, bytes | bytearray):
            return cls({DEFAULT_KEY_ID: bytes(key)}, signing_key_id=signing_key_id)
        if isinstance(key, str):
            return cls.parse(key, signing_key_id=signing_key_id)
        if isinstance(key, Mapping):
            return cls(key, signing_key_id=signing_key_id)
        raise ConfigurationError(
            "a snapshot key is one secret (bytes, or text), kid:secret[,kid:secret...] text, or "
            f"a mapping {{kid: secret}}; got {type(key).__name__}"
        )

    @classmethod
    def parse(cls, text: str, *, signing_key_id: str | None = None) -> SnapshotKeys:
        """Keys written as ``kid:secret[,kid:secret...]``; the first one signs unless
        ``signing_key_id`` names another. Text with neither ``:`` nor ``,`` is one secret,
        under the key id :data:`DEFAULT_KEY_ID`."""
        if ":" not in text and "," not in text:
            return cls({DEFAULT_KEY_ID: text.strip()}, signing_key_id=signing_key_id)
        keys: dict[str, str] = {}
        for position, entry in enumerate(text.split(","), 1):
            key_id, colon, secret = entry.partition(":")
            key_id, secret = key_id.strip(), secret.strip()
            if not colon or not _KEY_ID.fullmatch(key_id):
                raise ConfigurationError(
                    f"snapshot key entry {position} is not kid:secret (the kid {_KEY_ID_RULE}); "
                    "write kid:secret[,kid:secret...]"
                )
            if key_id in keys:
                raise ConfigurationError(f"snapshot key id {key_id!r} is listed twice")
            keys[key_id] = secret
        return cls(keys, signing_key_id=signing_key_id)

    @property
    def key_ids(self) -> list[str]:
        """Every key id this ring verifies with, the signing one first."""
        return [self.signing_key_id, *(k for k in self._secrets if k != self.signing_key_id)]

    def __repr__(self) -> str:
        return f"SnapshotKeys(key_ids={self.key_ids!r})"

    def _mac(self, key_id: str, header: bytes, body: bytes) -> bytes:
        secret = self._secrets[key_id]
        return hmac.new(secret, signed_message(header, body), hashlib.sha256).hexdigest().encode()

    def seal(self, header: Mapping[str, Any], body: bytes) -> dict[str, bytes]:
        """The hash fields of a signed snapshot: the header naming the signing key, body, mac."""
        text = json.dumps({**header, "key_id": self.signing_key_id}).encode()
        return {"header": text, "body": body, "mac": self._mac(self.signing_key_id, text, body)}

    def verify(self, fields: Mapping[bytes, bytes], snapshot_id: str) -> None:
        """Return if ``fields`` carry a good MAC under one of these keys, else raise
        :class:`SnapshotError` (``unsigned`` or ``forged``)."""
        mac = fields.get(b"mac")
        if mac is None:
            raise SnapshotError(
                f"snapshot {snapshot_id} is not signed; this reader accepts only snapshots "
                f"signed with key ids {self.key_ids} (written without the key, or before it "
                "was set)",
                reason="unsigned",
            )
        header = fields.get(b"header", b"")
        body = fields.get(b"body", b"")
        try:
            key_id = json.loads(header).get("key_id")
        except (ValueError, AttributeError, RecursionError):
            key_id = None
        if not isinstance(key_id, str) or key_id not in self._secrets:
            shown = repr(key_id)[:70] if isinstance(key_id, str) else "none"
            raise SnapshotError(
                f"snapshot {snapshot_id} names key id {shown}, not one of this reader's "
                f"{self.key_ids}: refused as forged",
                reason="forged",
            )
        if not hmac.compare_digest(self._mac(key_id, header, body), mac):
            raise SnapshotError(
                f"snapshot {snapshot_id} does not match its MAC under key {key_id!r}: refused "
                "as forged",
                reason="forged",
            )


SnapshotKeyLike = str | bytes | Mapping[str, bytes | str] | SnapshotKeys
"""Snapshot keys as :class:`RedisSnapshots` takes them: one secret as bytes (under the key id
:data:`DEFAULT_KEY_ID`), ``kid:secret[,kid:secret...]`` text (one secret when it holds neither
``:`` nor ``,``), a mapping of key ids to secrets, or :class:`SnapshotKeys`."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read back from Redis."""

    id: str
    topic: str
    offsets: dict[int, int]
    """partition -> offset of the first event *not* in the state."""
    created_at: float
    max_token_lifetime: float
    max_clock_skew: float
    state: StateSnapshot


class RedisSnapshots:
    """Writes and reads snapshots of a sidecar's state in Redis; thread safe."""

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "jwt-revocation",
        ttl: DurationLike = timedelta(hours=1),
        grace: DurationLike = 60,
        key: SnapshotKeyLike | None = None,
        signing_key_id: str | None = None,
    ) -> None:
        if not prefix:
            raise ConfigurationError("prefix must not be empty")
        from ._redis_blocklist import redis_client

        self.client: redis.Redis = redis_client(client)
        if self.client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigurationError(
                "snapshots are binary: give a Redis client without decode_responses=True"
            )
        self.prefix = prefix
        self.ttl = parse_duration(ttl, name="ttl")
        self.grace = parse_duration(grace, name="grace")
        if self.ttl.total_seconds() < 1 or self.grace.total_seconds() < 1:
            raise ConfigurationError("ttl and grace must be at least one second")
        if key is None and signing_key_id is not None:
            raise ConfigurationError("signing_key_id names a key, but no key was given")
        self.keys: SnapshotKeys | None = (
            None if key is None else SnapshotKeys.from_key(key, signing_key_id=signing_key_id)
        )
        """The keys that sign and verify snapshots; None trusts whoever can write to Redis."""

    def __repr__(self) -> str:  # a URL may carry a password: keep the client out of reprs
        keys = "" if self.keys is None else f", key_ids={self.keys.key_ids!r}"
        return f"RedisSnapshots(prefix={self.prefix!r}, ttl={self.ttl}{keys})"

    @property
    def signed(self) -> bool:
        """True when this store signs what it writes and refuses what is not signed."""
        return self.keys is not None

    def _key(self, topic: str, name: str) -> str:
        return f"{self.prefix}:{topic}:snapshot:{name}"

    def save(
        self,
        topic: str,
        state: StateSnapshot,
        offsets: dict[int, int],
        *,
        created_at: float,
        max_token_lifetime: float,
        max_clock_skew: float,
    ) -> str:
        """Store a snapshot and make it the latest; return its id."""
        import redis

        body = zlib.compress(json.dumps(_body_content(state), separators=(",", ":")).encode(), 1)
        header = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "topic": topic,
            "offsets": {str(p): o for p, o in sorted(offsets.items())},
            "created_at": created_at,
            "max_token_lifetime": max_token_lifetime,
            "max_clock_skew": max_clock_skew,
            "entries": _entry_counts(state),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        fields = (
            {"header": json.dumps(header).encode(), "body": body}
            if self.keys is None
            else self.keys.seal(header, body)
        )
        snapshot_id = f"{int(created_at * 1000):013d}-{uuid.uuid4().hex[:8]}"
        latest = self._key(topic, "latest")
        ttl = int(self.ttl.total_seconds())
        try:
            previous = _bytes(self.client.get(latest))
            with self.client.pipeline(transaction=True) as pipe:
                key = self._key(topic, snapshot_id)
                pipe.hset(key, mapping=dict(fields.items()))  # typed as redis-py wants
                pipe.expire(key, ttl)
                pipe.set(latest, snapshot_id, ex=ttl)
                if previous is not None:
                    pipe.expire(
                        self._key(topic, previous.decode()), int(self.grace.total_seconds())
                    )
                pipe.execute()
        except redis.RedisError as err:
            raise SnapshotError(
                f"cannot write the snapshot to Redis: {type(err).__name__}", reason="unreachable"
            ) from err
        logger.info(
            "snapshot written topic=%s id=%s entries=%d body_bytes=%d key_id=%s",
            topic,
            snapshot_id,
            len(state),
            len(body),
            "none" if self.keys is None else self.keys.signing_key_id,
        )
        return snapshot_id

    def load(
        self, topic: str, *, max_token_lifetime: float, max_clock_skew: float, now: float
    ) -> Snapshot:
        """The latest snapshot of ``topic`` usable with these settings, or :class:`SnapshotError`."""
        import redis

        try:
            latest = _bytes(self.client.get(self._key(topic, "latest")))
            fields: dict[bytes, bytes] = (
                self.client.hgetall(self._key(topic, latest.decode()))  # type: ignore[assignment]
                if latest is not None
                else {}
            )
        except redis.RedisError as err:
            raise SnapshotError(
                f"cannot read snapshots from Redis: {type(err).__name__}", reason="unreachable"
            ) from err
        if latest is None:
            raise SnapshotError(f"no snapshot of topic {topic!r}", reason="missing")
        snapshot_id = latest.decode()
        if not fields:
            raise SnapshotError(f"snapshot {snapshot_id} has expired", reason="missing")
        if self.keys is not None:
            self.keys.verify(fields, snapshot_id)  # before anything in it is read
        header = _header(fields, snapshot_id)
        if header.get("format") != FORMAT or header.get("schema_version") != SCHEMA_VERSION:
            raise SnapshotError(
                f"snapshot {snapshot_id} has format {header.get('format')!r} and schema version "
                f"{header.get('schema_version')!r}; this version reads format {FORMAT}, schema "
                f"version {SCHEMA_VERSION}",
                reason="unsupported_version",
            )
        if header.get("topic") != topic:
            raise SnapshotError(
                f"snapshot {snapshot_id} is of topic {header.get('topic')!r}, not {topic!r}",
                reason="other_topic",
            )
        try:
            created_at = _seconds(header["created_at"])
            window = _seconds(header["max_token_lifetime"]) + _seconds(header["max_clock_skew"])
            offsets = {int(p): int(o) for p, o in header["offsets"].items()}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as err:
            raise SnapshotError(
                f"snapshot {snapshot_id} has a malformed header: {err!r}", reason="corrupt"
            ) from None
        age = now - created_at
        if age > max_token_lifetime:
            raise SnapshotError(
                f"snapshot {snapshot_id} is {age:.0f} s old, older than max_token_lifetime "
                f"({max_token_lifetime:.0f} s)",
                reason="too_old",
            )
        if window < max_token_lifetime + max_clock_skew:
            raise SnapshotError(
                f"snapshot {snapshot_id} kept entries for {window:.0f} s, less than this "
                f"sidecar's {max_token_lifetime + max_clock_skew:.0f} s: it may miss entries",
                reason="narrower_window",
            )
        state = _body(fields, header, snapshot_id)
        return Snapshot(
            id=snapshot_id,
            topic=topic,
            offsets=offsets,
            created_at=created_at,
            max_token_lifetime=_seconds(header["max_token_lifetime"]),
            max_clock_skew=_seconds(header["max_clock_skew"]),
            state=state,
        )


def _bytes(value: Any) -> bytes | None:
    """A reply of a client without decode_responses: bytes or None."""
    return value if value is None or isinstance(value, bytes) else str(value).encode()


def _header(fields: dict[bytes, bytes], snapshot_id: str) -> dict[str, Any]:
    try:
        header = json.loads(fields[b"header"])
    except (KeyError, ValueError, RecursionError) as err:  # RecursionError: nested too deep
        raise SnapshotError(
            f"snapshot {snapshot_id} has no readable header: {type(err).__name__}",
            reason="corrupt",
        ) from None
    if not isinstance(header, dict):
        raise SnapshotError(f"snapshot {snapshot_id} has a malformed header", reason="corrupt")
    return header


def _body(fields: dict[bytes, bytes], header: dict[str, Any], snapshot_id: str) -> StateSnapshot:
    body = fields.get(b"body", b"")
    if hashlib.sha256(body).hexdigest() != header.get("body_sha256"):
        raise SnapshotError(
            f"snapshot {snapshot_id} body does not match its checksum", reason="corrupt"
        )
    try:
        data = json.loads(zlib.decompress(body))
        state = StateSnapshot(
            _jtis(data["jtis"]),
            {str(u): _seconds(t) for u, t in data["cutoffs"].items()},
            {str(u): _seconds(t) for u, t in data["deletions"].items()},
            {str(i): _jtis(held) for i, held in data.get("issuer_jtis", {}).items()},
            {str(s): _seconds(t) for s, t in data.get("sessions", {}).items()},
            {None if i is None else str(i): _seconds(t) for i, t in data.get("all_tokens", [])},
        )
    # What a damaged or hand-made body raises; OverflowError: int(Infinity) or float(10**400).
    except (
        zlib.error,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        OverflowError,
    ) as err:
        raise SnapshotError(
            f"snapshot {snapshot_id} body is unreadable: {type(err).__name__}", reason="corrupt"
        ) from None
    expected = header.get("entries", {})
    counts = _entry_counts(state)
    if expected != counts:
        raise SnapshotError(
            f"snapshot {snapshot_id} holds {counts}, its header says {expected}",
            reason="corrupt",
        )
    return state


def _by_exp(jtis: Mapping[str, int]) -> list[tuple[int, list[str]]]:
    """jti -> exp as [[exp, [jti, ...]], ...]: an expiry second is written once."""
    grouped: defaultdict[int, list[str]] = defaultdict(list)
    for jti, exp in jtis.items():
        grouped[exp].append(jti)
    return sorted(grouped.items())


def _seconds(value: Any) -> float:
    """An instant or duration of a snapshot: a finite number (``numeric_date``), or ValueError,
    which the reader turns into ``corrupt``. An infinite cutoff would make every check of its
    user raise, not answer."""
    seconds = numeric_date(value)
    if seconds is None:
        raise ValueError(f"{type(value).__name__} {value!r:.20} is no finite number of seconds")
    return seconds


def _jtis(groups: Any) -> dict[str, int]:
    jtis: dict[str, int] = {}
    for exp, group in groups:
        jtis.update(dict.fromkeys(group, int(exp)))
    return jtis


def _body_content(state: StateSnapshot) -> dict[str, Any]:
    """The body's JSON. The kinds added after format 1 appear only when they hold entries, so
    a sidecar of an older version still warm-starts from a snapshot without them; one with
    them reads as ``corrupt`` to it (its counts differ), and it replays instead."""
    content: dict[str, Any] = {
        "jtis": _by_exp(state.jtis),
        "cutoffs": state.cutoffs,
        "deletions": state.deletions,
    }
    if state.issuer_jtis:
        content["issuer_jtis"] = {i: _by_exp(jtis) for i, jtis in state.issuer_jtis.items()}
    if state.sessions:
        content["sessions"] = state.sessions
    if state.all_tokens:
        content["all_tokens"] = sorted(state.all_tokens.items(), key=lambda item: item[0] or "")
    return content


def _entry_counts(state: StateSnapshot) -> dict[str, int]:
    """The header's entry counts by event type; the newer kinds only when they hold entries."""
    counts = {
        "token_revoked": len(state.jtis) + sum(map(len, state.issuer_jtis.values())),
        "user_tokens_revoked": len(state.cutoffs),
        "user_deleted": len(state.deletions),
    }
    if state.sessions:
        counts["session_revoked"] = len(state.sessions)
    if state.all_tokens:
        counts["all_tokens_revoked"] = len(state.all_tokens)
    return counts


def resumable(snapshot: Snapshot, begins: Mapping[int, int], ends: Mapping[int, int]) -> Snapshot:
    """``snapshot`` if a sidecar can resume from it on a topic with these offsets, else raise.

    ``begins`` and ``ends`` are the broker's first and end offsets of every partition. The
    snapshot must cover exactly the topic's partitions, and each of its offsets must still be
    held by the broker: a sidecar resuming there then misses no event.
    """
    ids = sorted(ends)
    if sorted(snapshot.offsets) != ids:
        raise SnapshotError(
            f"snapshot {snapshot.id} covers partitions {sorted(snapshot.offsets)}, the "
            f"topic has {ids}",
            reason="partitions_changed",
        )
    gone = {p: snapshot.offsets[p] for p in ids if not begins[p] <= snapshot.offsets[p] <= ends[p]}
    if gone:
        raise SnapshotError(
            f"snapshot {snapshot.id} resumes at offsets {gone}, which the broker no longer holds "
            f"(first offsets {dict(begins)}, end offsets {dict(ends)})",
            reason="offsets_gone",
        )
    return snapshot


class SnapshotWriter:
    """Writes a sidecar's snapshots: now on request, or in the background every interval.

    ``take`` returns a copy of the state and the offsets it stands for, taken together under
    the state's lock, or raises :class:`SnapshotError` when a snapshot now would be incomplete.
    """

    def __init__(
        self,
        store: RedisSnapshots,
        topic: str,
        take: Callable[[], tuple[StateSnapshot, dict[int, int]]],
        *,
        max_token_lifetime: float,
        max_clock_skew: float,
        clock: Callable[[], float],
        name: str,
    ) -> None:
        self.store = store
        self.topic = topic
        self._take = take
        self._lifetime = max_token_lifetime
        self._skew = max_clock_skew
        self._clock = clock
        self._name = name
        self._thread: threading.Thread | None = None
        self.last_id: str | None = None
        """The id of the last snapshot written."""

    def save(self) -> str:
        """Write a snapshot now; return its id, or raise :class:`SnapshotError`."""
        state, offsets = self._take()
        snapshot_id = self.store.save(
            self.topic,
            state,
            offsets,
            created_at=self._clock(),
            max_token_lifetime=self._lifetime,
            max_clock_skew=self._skew,
        )
        self.last_id = snapshot_id
        return snapshot_id

    def forget_thread(self) -> None:
        """In a forked child, the parent's writer thread does not exist."""
        self._thread = None

    def save_in_background(self) -> None:
        """Start writing a snapshot in a thread, unless one is being written; log a failure."""
        if self._thread is not None and self._thread.is_alive():
            return

        def write() -> None:
            try:
                self.save()
            except SnapshotError as err:
                logger.warning(
                    "snapshot not written name=%s topic=%s reason=%s detail=%s",
                    self._name,
                    self.topic,
                    err.reason,
                    err,
                )

        self._thread = threading.Thread(target=write, name=f"{self._name}-snapshot", daemon=True)
        self._thread.start()
