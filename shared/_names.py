"""The names a Kafka client is given, checked when it is built rather than when it connects.

* Bootstrap servers are ``host:port[,host:port...]`` (a list or tuple of them is joined; a
  host without a port takes kafka-python's 9092; empty entries are dropped). A scheme
  (``kafka://``, ``http://``, ``PLAINTEXT://``), no entry at all, a port that is not a number
  from 1 to 65535 or a space is a :class:`ConfigurationError` that shows the entry to write instead: kafka-python would
  otherwise try to resolve ``kafka`` as a host until its bootstrap timed out.
* A topic name is 1 to 249 of ``A-Z a-z 0-9 . _ -`` and neither ``.`` nor ``..``, as Kafka
  requires; otherwise the first publish fails after the timeout with ``InvalidTopicError``.

Messages show the entry without any ``user:password@`` part a URL may carry.
"""

from __future__ import annotations

import re
import urllib.parse

from ._errors import ConfigurationError

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PORT = re.compile(r"\d{1,5}")


def check_bootstrap_servers(value: object, *, name: str = "bootstrap_servers") -> str:
    """``value`` as the comma-separated ``host:port`` list kafka-python takes, or a
    :class:`ConfigurationError` saying what to write."""
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{name} must be host:port text (several comma separated); got {type(value).__name__}"
        )
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise ConfigurationError(f"{name} must name at least one broker as host:port")
    for entry in entries:
        if "://" in entry:
            parts = urllib.parse.urlsplit(entry)
            bare = parts.netloc.rpartition("@")[2] or "host:port"
            raise ConfigurationError(
                f"{name} takes host:port, without a scheme: write {bare!r} instead of "
                f"'{parts.scheme}://{bare}' (the protocol is the connection's security_protocol)"
            )
        if any(c.isspace() for c in entry):
            raise ConfigurationError(f"{name} entry {entry!r} holds a space; write host:port")
        if not _host_port(entry):
            raise ConfigurationError(
                f"{name} entry {entry!r} is not host:port with a port from 1 to 65535"
            )
    return ",".join(entries)


def _host_port(entry: str) -> bool:
    """True for ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` with a port in range; a
    bare IPv6 address (several colons, no brackets) is left to kafka-python."""
    if entry.startswith("["):
        found = re.fullmatch(r"\[[0-9A-Fa-f:.]+\](?::(\d{1,5}))?", entry)
        return found is not None and (found.group(1) is None or 0 < int(found.group(1)) < 65536)
    if entry.count(":") != 1:
        return True
    host, _, port = entry.partition(":")
    return bool(host) and _PORT.fullmatch(port) is not None and 0 < int(port) < 65536


def check_topic_name(topic: object, *, name: str = "topic") -> str:
    """``topic`` if Kafka accepts it as a topic name, else a :class:`ConfigurationError`."""
    if not isinstance(topic, str):
        raise ConfigurationError(f"{name} must be a topic name; got {type(topic).__name__}")
    if not topic:
        raise ConfigurationError(f"{name} must not be empty")
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise ConfigurationError(
            f"{name} {topic[:300]!r} is no Kafka topic name: 1 to 249 of A-Z a-z 0-9 . _ - "
            "(and not . or ..)"
        )
    return topic
