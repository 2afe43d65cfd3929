"""The classic Redis blocklist, kept current by a sink, for services that cannot embed a sidecar.

``jwt-revocation redis-sink`` runs a sidecar whose events are also written to Redis by a
:class:`RedisBlocklistSink`. Any service, in any language, then answers "is this token revoked"
with one Redis call (:data:`CHECK_SCRIPT`), and Python services can use :class:`RedisBlocklist`
as the verifier's revocation source.

Key layout (``prefix`` is ``jwt-revocation`` by default)::

    {prefix}:jti:{jti}                  the token's exp; expires at exp + max_clock_skew
    {prefix}:ijti:{n}:{iss}:{jti}       the same, for a jti revoked under one issuer only (n is
                                        the length of iss, so no two (iss, jti) share a key)
    {prefix}:cutoff:{user}              latest not_before; expires max_token_lifetime +
                                        max_clock_skew after it
    {prefix}:deleted:{user}             latest deletion instant; expires like a cutoff
    {prefix}:session:{sid}              latest not_before of the session; expires like a cutoff
    {prefix}:all_tokens                 latest not_before of every issuer's tokens; likewise
    {prefix}:all_tokens:{iss}           latest not_before of one issuer's tokens; likewise
    {prefix}:sink:{topic}:offsets       hash: partition -> next offset not yet written
    {prefix}:sink:{topic}:heartbeat     when the sink, caught up, last heard from the broker

Instants are seconds since the epoch. Writes keep the later value (the sidecar's merge rules),
so replaying events is harmless. Each batch of events and the offsets after it are written in
one transaction, before the sink applies them locally: a restarted sink resumes writing at the
stored offsets, losing and repeating nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from jwt_revocation.shared import (
    EVENT_TYPES,
    Clock,
    ConfigurationError,
    DurationLike,
    Event,
    RevocationReason,
    SessionRevoked,
    SidecarUnavailableError,
    StoreError,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
    parse_duration,
)
from jwt_revocation.shared._extras import needs_extra

with needs_extra("redis", __name__):
    import redis
    import redis.asyncio

logger = logging.getLogger(__name__)


APPLY_SCRIPT = """
-- KEYS: one key per event. ARGV[1] now, ARGV[2] max_clock_skew, ARGV[3] max_token_lifetime
-- + max_clock_skew, then per event "j <exp>" (jti) or "u <instant>" (cutoff or deletion).
local now, skew, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local changed = 0
for i, key in ipairs(KEYS) do
  local kind, text = string.sub(ARGV[i + 3], 1, 1), string.sub(ARGV[i + 3], 3)
  local value = tonumber(text)
  local until_ = value + (kind == 'j' and skew or keep)
  if until_ > now then
    local held = tonumber(redis.call('GET', key))
    if held == nil or held < value then
      redis.call('SET', key, text, 'PXAT', math.ceil(until_ * 1000))
      changed = changed + 1
    end
  end
end
return changed
"""

CHECK_SCRIPT = """
-- KEYS[1] {prefix}:jti:{jti}, KEYS[2] {prefix}:deleted:{user}, KEYS[3] {prefix}:cutoff:{user},
-- KEYS[4] {prefix}:sink:{topic}:heartbeat, then (optional, older callers pass 4 keys)
-- KEYS[5] {prefix}:ijti:{len(iss)}:{iss}:{jti}, KEYS[6] {prefix}:session:{sid},
-- KEYS[7] {prefix}:all_tokens, KEYS[8] {prefix}:all_tokens:{iss}.
-- ARGV[1] the token's iat ('' when it has none).
-- Returns {reason or false, heartbeat or false}; reason is token_revoked, user_deleted,
-- user_tokens_revoked, session_revoked or all_tokens_revoked.
local iat = tonumber(ARGV[1])
-- The one-second rule: the mirror of issued_before in consumer/_state.py, the one Python
-- copy; change both together (a property test holds them to the same answers).
local function issued_before(at)
  return iat == nil or iat < at or iat == math.floor(at)
end
local heartbeat = redis.call('GET', KEYS[4])
if redis.call('EXISTS', KEYS[1]) == 1 then return {'token_revoked', heartbeat} end
-- The sidecar's order: user rules, then the jti of one issuer, the session, everyone.
local rules = {{2, 'user_deleted'}, {3, 'user_tokens_revoked'}, {5, 'token_revoked'},
               {6, 'session_revoked'}, {7, 'all_tokens_revoked'}, {8, 'all_tokens_revoked'}}
for _, rule in ipairs(rules) do
  local key = KEYS[rule[1]]
  if key and rule[1] == 5 then
    if redis.call('EXISTS', key) == 1 then return {rule[2], heartbeat} end
  elseif key then
    local at = tonumber(redis.call('GET', key))
    if at ~= nil and issued_before(at) then
      return {rule[2], heartbeat}
    end
  end
end
return {false, heartbeat}
"""
"""The one-call check: eight keys (four from older callers still work, without the jtis of one
issuer, sessions and everyone's cutoffs), the token's ``iat``; see the module's key layout."""


def issuer_jti_key(prefix: str, issuer: str, jti: str) -> str:
    """The key of a jti revoked under one issuer: the issuer's length keeps keys apart."""
    return f"{prefix}:ijti:{len(issuer)}:{issuer}:{jti}"


def redis_client(client: redis.Redis | str) -> redis.Redis:
    """A ``redis.Redis``, or one made from a ``redis://``, ``rediss://`` or ``unix://`` URL;
    anything else is a :class:`ConfigurationError` (the URL is not shown: it may hold a
    password)."""
    if isinstance(client, redis.Redis):
        return client
    if isinstance(client, redis.asyncio.Redis):
        raise ConfigurationError(
            "client is an asyncio Redis client; pass a redis.Redis (or the redis:// URL): "
            "the sidecar and the verifier call Redis from threads"
        )
    if not isinstance(client, str):
        raise ConfigurationError(
            "client must be a redis.Redis or a redis:// URL; got " + type(client).__name__
        )
    try:
        return redis.Redis.from_url(client)
    except ValueError:
        raise ConfigurationError(
            "the Redis URL must start with redis://, rediss:// (TLS) or unix://, as in "
            "redis://127.0.0.1:6379/0"
        ) from None


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


class RedisBlocklistSink:
    """Writes every event a sidecar applies to the Redis blocklist (the sidecar's ``mirror``)."""

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "jwt-revocation",
        max_token_lifetime: DurationLike,
        max_clock_skew: DurationLike = 60,
    ) -> None:
        if not prefix:
            raise ConfigurationError("prefix must not be empty")
        self.client = redis_client(client)
        self.prefix = prefix
        self._skew = parse_duration(max_clock_skew, name="max_clock_skew").total_seconds()
        self._keep = (
            parse_duration(max_token_lifetime, name="max_token_lifetime").total_seconds()
            + self._skew
        )
        self._apply = self.client.register_script(APPLY_SCRIPT)
        self.written = 0
        """Events written since this sink was created."""

    def __repr__(self) -> str:
        return f"RedisBlocklistSink(prefix={self.prefix!r})"

    def resume_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset of the first event not written yet."""
        try:
            stored = self.client.hgetall(f"{self.prefix}:sink:{topic}:offsets")
        except redis.RedisError as err:
            raise StoreError(
                f"cannot read the sink's offsets from Redis: {type(err).__name__}"
            ) from err
        return {int(p): int(o) for p, o in stored.items()}

    def write(
        self, topic: str, events: Sequence[Event], offsets: Mapping[int, int], now: float
    ) -> None:
        """Write events and the offsets after them in one transaction, or raise."""
        keys: list[str] = []
        args: list[str] = [_number(now), _number(self._skew), _number(self._keep)]
        p = self.prefix
        for event in events:
            if isinstance(event, TokenRevoked):
                scope = event.token_issuer
                keys.append(
                    f"{p}:jti:{event.jti}" if scope is None else issuer_jti_key(p, scope, event.jti)
                )
                args.append(f"j {_number(event.expires_at.timestamp())}")
                continue
            if isinstance(event, UserTokensRevoked):
                keys.append(f"{p}:cutoff:{event.user_id}")
            elif isinstance(event, UserDeleted):
                keys.append(f"{p}:deleted:{event.user_id}")
            elif isinstance(event, SessionRevoked):
                keys.append(f"{p}:session:{event.session_id}")
            else:
                scope = event.token_issuer
                keys.append(f"{p}:all_tokens" if scope is None else f"{p}:all_tokens:{scope}")
            instant = event.at if isinstance(event, UserDeleted) else event.not_before
            args.append(f"u {_number(instant.timestamp())}")
        try:
            with self.client.pipeline(transaction=True) as pipe:
                if keys:
                    self._apply(keys=keys, args=args, client=pipe)
                pipe.hset(
                    f"{self.prefix}:sink:{topic}:offsets",
                    mapping={str(p): o for p, o in offsets.items()},
                )
                pipe.execute()
        except redis.RedisError as err:
            raise StoreError(
                f"cannot write {len(events)} events to Redis: {type(err).__name__}"
            ) from err
        self.written += len(events)

    def heartbeat(self, topic: str, now: float) -> None:
        """Record that the sink is caught up and in contact with the broker; never raises."""
        try:
            self.client.set(f"{self.prefix}:sink:{topic}:heartbeat", _number(now))
        except redis.RedisError as err:
            logger.warning(
                "sink heartbeat not written topic=%s error=%s", topic, type(err).__name__
            )


class RedisBlocklist:
    """A revocation source for :class:`RevocationVerifier` that asks the sink's Redis keys.

    One round trip per check. Fails closed with :class:`SidecarUnavailableError` when Redis
    cannot be reached (reason ``failed``) or the sink's heartbeat is missing or older than
    ``max_staleness`` (reason ``stale``).
    """

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        topic: str = "auth.revocations",
        prefix: str = "jwt-revocation",
        max_token_lifetime: DurationLike,
        max_clock_skew: DurationLike = 60,
        max_staleness: DurationLike = 30,
        clock: Clock = time.time,
    ) -> None:
        self.client = redis_client(client)
        self.topic = topic
        self.prefix = prefix
        self.max_token_lifetime = parse_duration(
            max_token_lifetime, name="max_token_lifetime"
        ).total_seconds()
        self.max_clock_skew = parse_duration(max_clock_skew, name="max_clock_skew").total_seconds()
        self.max_staleness = parse_duration(max_staleness, name="max_staleness").total_seconds()
        self._clock = clock
        self._check = self.client.register_script(CHECK_SCRIPT)
        self._heartbeat = f"{prefix}:sink:{topic}:heartbeat"

    def __repr__(self) -> str:
        return f"RedisBlocklist(topic={self.topic!r}, prefix={self.prefix!r})"

    @property
    def state(self) -> RedisBlocklist:
        """The verifier reads ``check`` and the two windows from here."""
        return self

    def ensure_usable(self) -> None:
        """Every check asks Redis and checks the sink's heartbeat in the same call."""

    def check(
        self,
        jti: str | None,
        user_id: str | None,
        iat: float | None,
        session_id: str | None = None,
        issuer: str | None = None,
    ) -> RevocationReason | None:
        """Why the token is revoked, or None; one Redis round trip."""
        p = self.prefix
        keys = [
            f"{p}:jti:{jti}" if jti is not None else f"{p}:jti:",
            f"{p}:deleted:{user_id}" if user_id is not None else f"{p}:deleted:",
            f"{p}:cutoff:{user_id}" if user_id is not None else f"{p}:cutoff:",
            self._heartbeat,
            issuer_jti_key(p, issuer, jti)
            if jti is not None and issuer is not None
            else f"{p}:ijti:",
            f"{p}:session:{session_id}" if session_id is not None else f"{p}:session:",
            f"{p}:all_tokens",
            f"{p}:all_tokens:{issuer}" if issuer is not None else f"{p}:all_tokens:",
        ]
        try:
            reason, heartbeat = self._check(keys=keys, args=["" if iat is None else repr(iat)])
        except redis.RedisError as err:
            raise SidecarUnavailableError(
                f"revocation state unavailable (failed): Redis: {type(err).__name__}",
                reason="failed",
            ) from err
        age = None if heartbeat is None else self._clock() - float(heartbeat)
        if age is None or age > self.max_staleness:
            raise SidecarUnavailableError(
                "revocation state unavailable (stale): the Redis sink "
                + ("has never reported" if age is None else f"last reported {age:.0f} s ago"),
                reason="stale",
            )
        return _reason(reason)


_REASONS: dict[str, RevocationReason] = {reason: reason for reason in EVENT_TYPES}


def _reason(value: Any) -> RevocationReason | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return _REASONS.get(text, "user_tokens_revoked")
