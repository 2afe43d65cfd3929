"""One copy of the revocation state per host: the writer that keeps the file, the readers.

The host writer is a sidecar started with ``shared_path`` (``jwt-revocation sidecar
--shared-path PATH``): its state is a :class:`SharedTable` in the file at ``PATH``, kept by
:class:`SharedStateWriter`, a :class:`RevocationMirror` that takes every event before the
sidecar applies it, the offsets after them, and a heartbeat each time the sidecar hears from
the broker while caught up. Every worker process on the host reads it through
:class:`SharedRevocations`, a revocation source for :class:`RevocationVerifier` (and so the
FastAPI and Flask integrations; Django's runs a sidecar per process): no socket, no Kafka
consumer, no copy.

Contract:

1. The writer creates the file 0600 (0640 and the named ``group`` with ``shared_group``) in a
   temporary file beside ``PATH``, sized for ``max_entries`` (20 bytes per entry at
   ``max_entries``), and renames it over ``PATH``. A file at ``PATH`` written for the same
   topic, format, ``max_token_lifetime``, ``max_clock_skew`` and capacity and left between two
   updates is taken over instead, with its entries and offsets: the writer's sidecar hands it
   only the records past those offsets (warm start). A file it cannot take over is replaced
   and marked superseded, so its readers open the new one. One writer per path: the writer
   holds an exclusive ``flock`` on ``PATH.lock``. The temporary file's blocks are reserved
   (``posix_fallocate``) before it is mapped: a volume too small for the table is a
   :class:`ConfigurationError` naming the path, the bytes needed and the bytes free, never a
   SIGBUS when a page of the mapping finds no room (on an 8 MB tmpfs the writer died with
   exit -7 in the table's initialisation, its temporary left filling the volume). Holding
   the lock, the writer removes the temporaries other writers of ``PATH`` left (killed, or
   dead of such a SIGBUS): only a writer holding the lock creates one, so any not its own
   is stale, whatever its pid (in another pid namespace a pid says nothing).
2. A writer that took a file over clears its ready flag until its sidecar has caught up; it
   writes a heartbeat (its clock) at least every ``contact_interval`` while caught up and in
   contact with the broker, and on a clean stop marks the file stopped.
3. A reader never blocks on the writer and fails closed with
   :class:`SidecarUnavailableError` when the file is missing (``not_started``), refused,
   of another format or written with other settings (``failed``), not caught up
   (``loading``), stopped (``stopped``), or when its heartbeat is older than the staleness
   bound (``stale``): the writer's ``max_staleness`` unless the reader is given one. The
   writer's heartbeat comes with each contact (every ``max_staleness`` / 3 by default), so a
   writer killed with SIGKILL is noticed within ``max_staleness`` of its last heartbeat.
   Each check makes this test itself, with no decision cached (the flags word, the
   heartbeat's age by one clock read: :meth:`SharedTable.gate`), so a verifier asks no
   separate ``ensure_usable``. A reader opens the path again by itself when the file it has
   is superseded, replaced or not usable, so it serves again when a (re)started writer is
   caught up.
4. A reader refuses a file that is not a regular file, that is owned by a user other than
   itself, root or the ``owner`` it is given, or that its group or others may write, and a
   directory others may write without the sticky bit: a local user must not be able to
   un-revoke a token. The path is opened without following a symbolic link.
5. A reader checks tokens with the table's own rules (``_shared_table``): the same answers
   as :class:`RevocationState`; an entry applied by the writer is visible to the next check.
6. Expiry runs at the sidecar's sweeps (every ``sweep_interval``), a slice of the table each
   time, so that every slot is visited once per :data:`SWEEP_PERIOD`; readers go on reading.
7. The host writer's own state is the table (:class:`SharedTableState`): its sidecar keeps
   no dicts, verifies with the table's answers, and, over a file it took over, starts each
   partition at the file's offset (no replay: warm start); a file whose offsets run past the
   topic's end (a topic deleted and created again) stops the sidecar (failed) rather than
   skip records.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import logging
import math
import mmap
import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from jwt_revocation.shared import (
    Clock,
    ConfigurationError,
    Event,
    LifecycleError,
    RevocationReason,
    SidecarUnavailableError,
    SnapshotError,
)

from ._options import SidecarOptions
from ._shared_table import (
    CUTOFF,
    DELETION,
    FLAG_READY,
    FLAG_STOPPED,
    FLAG_SUPERSEDED,
    FORMAT_VERSION,
    HEADER_BYTES,
    KIND_NAMES,
    MAGIC,
    W_FLAGS,
    W_HEARTBEAT,
    W_STALENESS,
    SharedTable,
    TableLookup,
    capacity_for,
    file_size,
    slot_count,
)
from ._state import RevocationState, StateSnapshot

logger = logging.getLogger(__name__)

SWEEP_PERIOD = 60.0
"""Seconds in which the writer's expiry visits every slot once. A pass costs about 80 ns a
slot (measured on 1M entries, pure Python): 1.6% of a core for a table of 12.5M slots
(``max_entries`` 10M), 6.5% for 50M (40M); an entry stays up to this long past its expiry."""


class SharedStateWriter:
    """Keeps the host's shared table at ``path``: the mirror of a sidecar (``shared_path``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        topic: str,
        max_entries: int,
        max_token_lifetime: float,
        max_clock_skew: float,
        max_staleness: float,
        group: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.topic = topic
        self.capacity = capacity_for(max_entries)
        self.max_token_lifetime = max_token_lifetime
        self.max_clock_skew = max_clock_skew
        self.max_staleness = max_staleness
        self.gid = None if group is None else _group_id(group)
        self.table: SharedTable | None = None
        self.took_over = 0
        """Entries found in the file when it was taken over (0: a new file)."""
        self._map: mmap.mmap | None = None
        self._lock_fd: int | None = None
        self._pid = os.getpid()
        self._ready = False
        self._swept_at: float | None = None
        self._sweep_next = 0

    # -- the file ------------------------------------------------------------------------

    @classmethod
    def from_options(cls, options: SidecarOptions) -> SharedStateWriter:
        """The writer of ``options.shared_path``, bounded as the sidecar's options say."""
        if options.shared_path is None:
            raise ConfigurationError("a shared state writer needs options.shared_path")
        return cls(
            options.shared_path,
            topic=options.topic,
            max_entries=options.max_entries,
            max_token_lifetime=options.max_token_lifetime.total_seconds(),
            max_clock_skew=options.max_clock_skew.total_seconds(),
            max_staleness=options.max_staleness.total_seconds(),
            group=options.shared_group,
        )

    def open(self) -> SharedTable:
        """Take the file over or create it (rule 1); idempotent."""
        if self.table is not None:
            return self.table
        self._lock()
        self._remove_stale_temporaries()
        found = self._take_over()
        if found is None:
            found = self._create()
        self.table = found
        found.set_flags(0)
        found.set_writer(os.getpid(), self.max_staleness)
        return found

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigurationError(
                f"another writer already keeps the shared state at {self.path} (it holds "
                f"{lock_path}); run one writer per path"
            ) from None
        self._lock_fd = fd

    def _temporary(self, pid: int) -> Path:
        return self.path.with_name(f".{self.path.name}.{pid}.new")

    def _remove_stale_temporaries(self) -> None:
        """Remove the temporaries of other writers of this path; call holding the lock."""
        own = self._temporary(os.getpid())
        for stale in self.path.parent.glob(f".{self.path.name}.*.new"):
            if stale == own or not stale.name.removesuffix(".new").rsplit(".", 1)[-1].isdigit():
                continue
            with contextlib.suppress(FileNotFoundError):
                size = stale.lstat().st_size
                stale.unlink()
                logger.warning(
                    "removed a temporary file another writer left path=%s bytes=%d", stale, size
                )

    def _reserve(self, fd: int, size: int, temporary: Path) -> None:
        """Allocate the file's blocks now, so that no page of its mapping can lack room."""
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise
            free = os.statvfs(temporary.parent)
            raise ConfigurationError(
                f"the shared state at {self.path} needs {size} bytes (max_entries "
                f"{self.capacity}) and its filesystem has {free.f_bavail * free.f_frsize} bytes "
                f"free ({os.strerror(err.errno)}): give the volume more room (a tmpfs "
                "emptyDir's sizeLimit) or lower max_entries"
            ) from None

    def _take_over(self) -> SharedTable | None:
        """The table of a usable file at the path, or None (an unusable one is superseded)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            usable = (
                stat.S_ISREG(info.st_mode)
                and info.st_uid == os.geteuid()
                and info.st_size == file_size(self.capacity)
            )
            why: str | None = "another size, owner or kind of file"
            if not usable:
                if stat.S_ISREG(info.st_mode) and info.st_size >= HEADER_BYTES:
                    self._supersede(fd)
            else:
                mapped = mmap.mmap(fd, info.st_size)
                table = SharedTable(memoryview(mapped))
                why = self._unusable(table)
                if why is None:
                    self._map = mapped
                    self.took_over = len(table)
                    self._fix_mode(fd)
                    logger.info(
                        "shared state taken over path=%s entries=%d offsets=%s",
                        self.path,
                        self.took_over,
                        table.offsets(),
                    )
                    return table
                table.set_flags(table.flags | FLAG_SUPERSEDED)
                table.release()
                mapped.close()
        finally:
            os.close(fd)
        logger.warning("shared state at %s not taken over (%s); writing a new one", self.path, why)
        return None

    def _unusable(self, table: SharedTable) -> str | None:
        if table.magic != MAGIC or table.version != FORMAT_VERSION:
            return "another format"
        if table.sequence & 1:
            return "its writer died in the middle of an update"
        if table.topic != self.topic:
            return f"written for topic {table.topic!r}"
        if (
            table.capacity != self.capacity
            or table.max_token_lifetime != self.max_token_lifetime
            or table.max_clock_skew != self.max_clock_skew
        ):
            return "written with another max_entries, max_token_lifetime or max_clock_skew"
        return None

    @staticmethod
    def _supersede(fd: int) -> None:
        with mmap.mmap(fd, HEADER_BYTES) as header:
            view = memoryview(header)
            table = SharedTable(view)
            if table.magic == MAGIC:
                table.set_flags(table.flags | FLAG_SUPERSEDED)
            table.release()
            view.release()

    def _fix_mode(self, fd: int) -> None:
        if self.gid is not None:
            os.fchown(fd, -1, self.gid)
            os.fchmod(fd, 0o640)
        else:
            os.fchmod(fd, 0o600)

    def _create(self) -> SharedTable:
        size = file_size(self.capacity)
        temporary = self._temporary(os.getpid())
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600)
        try:
            self._fix_mode(fd)
            self._reserve(fd, size, temporary)
            mapped = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            temporary.unlink()
            raise
        os.close(fd)
        view = memoryview(mapped)
        SharedTable.initialise(
            view,
            capacity=self.capacity,
            max_token_lifetime=self.max_token_lifetime,
            max_clock_skew=self.max_clock_skew,
            max_staleness=self.max_staleness,
            topic=self.topic,
            writer=os.getpid(),
        )
        os.replace(temporary, self.path)
        self._map = mapped
        logger.info(
            "shared state created path=%s slots=%d bytes=%d",
            self.path,
            slot_count(self.capacity),
            size,
        )
        return SharedTable(view)

    def close(self) -> None:
        """Mark the file stopped (readers fail closed) and let other writers take it over.

        The mapping itself stays until the object is collected: a consumer thread that has
        not ended yet may still write to it.
        """
        table = self.table
        if table is not None and os.getpid() == self._pid:
            table.set_flags(FLAG_STOPPED)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- RevocationMirror ----------------------------------------------------------------

    def resume_offsets(self, topic: str) -> dict[int, int]:
        """The offsets the file's entries stand for (empty for a new file)."""
        return self.open().offsets()

    def write(
        self, topic: str, events: Sequence[Event], offsets: Mapping[int, int], now: float
    ) -> None:
        """Merge the events into the table, then record the offsets after them."""
        if os.getpid() != self._pid:
            raise LifecycleError(
                f"the shared state at {self.path} is kept by process {self._pid}; a forked "
                "process may not write it"
            )
        table = self.open()
        for event in events:
            table.apply(event, now)
        table.set_offsets(dict(offsets))

    def heartbeat(self, topic: str, now: float) -> None:
        """Say the writer is caught up and in contact at ``now``."""
        table = self.table
        if table is None or os.getpid() != self._pid:
            return
        table.set_heartbeat(now)
        if not self._ready:
            table.set_flags(FLAG_READY)
            self._ready = True
            logger.info("shared state ready path=%s entries=%d", self.path, len(table))

    def sweep(self, now: float) -> int:
        """Expire the next slice of slots (rule 6); return how many entries were removed."""
        table = self.table
        if table is None or os.getpid() != self._pid:
            return 0
        total = slot_count(table.capacity)
        last, self._swept_at = self._swept_at, now
        if last is None:
            return 0
        share = min(max(now - last, 0.0) / SWEEP_PERIOD, 1.0)
        width = max(math.ceil(total * share), 1)
        # Down from the top, slice by slice, so that a removal's backward shift only moves
        # slots this pass has visited (see SharedTable.expire).
        stop = self._sweep_next or total
        start = max(stop - width, 0)
        removed = table.expire(now, start, stop)
        self._sweep_next = start
        return removed

    def expire_all(self, now: float) -> int:
        """Expire every slot now; return how many entries were removed."""
        return self.open().expire(now)


class SharedTableState(RevocationState):
    """A host writer's own state: the shared table its :class:`SharedStateWriter` keeps.

    The writer, as the sidecar's mirror, merges each event before the sidecar applies it, so
    :meth:`apply` has nothing left to do; lookups, counts and expiry go to the table. The
    inherited dicts stay empty. It cannot be copied (no snapshots: the file is the host
    writer's persistence).
    """

    def __init__(self, writer: SharedStateWriter) -> None:
        super().__init__(
            max_token_lifetime=writer.max_token_lifetime, max_clock_skew=writer.max_clock_skew
        )
        self.writer = writer

    def check(
        self,
        jti: str | None,
        user_id: str | None,
        iat: float | None,
        session_id: str | None = None,
        issuer: str | None = None,
    ) -> RevocationReason | None:
        """The table's answer; fails closed before the writer has opened its file."""
        table = self.writer.table
        if table is None:
            raise SidecarUnavailableError(
                f"the shared state at {self.writer.path} is not open yet", reason="not_started"
            )
        return table.check(jti, user_id, iat, session_id, issuer)

    def has_user_entry(self, user_id: str) -> bool:
        table = self.writer.table
        return table is not None and (
            table.value(CUTOFF, user_id) is not None or table.value(DELETION, user_id) is not None
        )

    def adds_entry(self, event: Event) -> bool:
        """Conservatively True: an event counts as a new entry for the capacity check."""
        return True

    def apply(self, event: Event, now: float) -> bool:
        """Already merged by the writer (the sidecar's mirror) before the sidecar applies."""
        return True

    def load(self, snapshot: StateSnapshot, now: float) -> int:
        raise SnapshotError(
            "a host writer keeps its state in its shared file, not in snapshots",
            reason="missing",
        )

    def expire(self, now: float) -> int:
        """Expire the next slice of the table (rule 6)."""
        return self.writer.sweep(now)

    def __len__(self) -> int:
        table = self.writer.table
        return 0 if table is None else len(table)

    def counts(self) -> dict[str, int]:
        table = self.writer.table
        held = dict.fromkeys(KIND_NAMES.values(), 0) if table is None else table.counts()
        return {
            "token_revoked": held["jti"] + held["issuer_jti"],
            "user_tokens_revoked": held["cutoff"],
            "user_deleted": held["deletion"],
            "session_revoked": held["session"],
            "all_tokens_revoked": held["everyone"] + held["issuer_all"],
        }

    def copy(self) -> StateSnapshot:
        raise SnapshotError(
            "a host writer keeps its state in its shared file, not in snapshots",
            reason="missing",
        )


class SharedRevocations:
    """A revocation source that reads the host's shared state at ``path`` (rule 3 to 5).

    ``max_token_lifetime`` and ``max_clock_skew`` are the writer's; without them they are
    read from the file, which must then exist. Once known, a file written with other values
    is refused. ``max_staleness`` defaults to the writer's. ``owner`` names one more user
    (name or id) allowed to own the file, for a writer that runs as another user.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_token_lifetime: float | None = None,
        max_clock_skew: float | None = None,
        max_staleness: float | None = None,
        owner: str | int | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.path = Path(path)
        self._owners = {os.geteuid(), 0} | ({_user_id(owner)} if owner is not None else set())
        self._clock = clock
        self._staleness = max_staleness
        self._table: SharedTable | None = None
        self._words: memoryview[int] | None = None
        """The table's words (``Q``) and doubles (``d``): read by the fast path directly."""
        self._doubles: memoryview[float] | None = None
        self._map: mmap.mmap | None = None
        self._inode: tuple[int, int] | None = None
        self._problem: SidecarUnavailableError | None = None
        self._lifetime = max_token_lifetime
        self._skew = max_clock_skew
        self.check: TableLookup = self._check_usable
        """Why the token is revoked, or None; fails closed (``SidecarUnavailableError``) when
        the writer is not ready and alive (:meth:`ensure_usable`'s test, made by the lookup
        itself). It is the open table's gated :meth:`SharedTable.check`, one call with no
        frame of this class's in between (a verifier looks it up at each call)."""
        self._reopen()
        if self._lifetime is None or self._skew is None:
            raise ConfigurationError(
                f"cannot read max_token_lifetime and max_clock_skew from {self.path} "
                f"({self._problem}): pass the writer's values as max_token_lifetime= and "
                "max_clock_skew="
            )
        self.state = self
        """The source's lookup: this object (``RevocationSource``)."""

    @property
    def max_token_lifetime(self) -> float:
        return self._lifetime or 0.0

    @property
    def max_clock_skew(self) -> float:
        return self._skew or 0.0

    def __repr__(self) -> str:
        return f"SharedRevocations({str(self.path)!r})"

    checks_usable = True
    """:meth:`check` runs :meth:`ensure_usable`'s test itself: a verifier need not call it."""

    def _check_usable(
        self,
        jti: str | None,
        user_id: str | None,
        iat: float | None,
        session_id: str | None = None,
        issuer: str | None = None,
    ) -> RevocationReason | None:
        """:meth:`check` when the file open is not usable right now (or none is): raise, or
        (the writer is back, or has replaced its file) look the token up."""
        self.ensure_usable()
        table = self._table
        assert table is not None
        return table.lookup(jti, user_id, iat, session_id, issuer)

    def ensure_usable(self) -> None:
        """Return when the shared state can decide now, else raise ``SidecarUnavailableError``."""
        words, doubles = self._words, self._doubles
        # The fast path: two words of the header, one clock read.
        if (
            words is not None
            and doubles is not None
            and words[W_FLAGS] == FLAG_READY
            # The writer's bound is read each time: a writer that takes the file over
            # writes its own.
            and self._clock() - doubles[W_HEARTBEAT] <= (self._staleness or doubles[W_STALENESS])
        ):
            return
        table = self._table
        if table is None or table.flags & FLAG_SUPERSEDED or self._replaced():
            self._reopen()
            table = self._table
        if table is None:
            assert self._problem is not None
            raise self._problem
        flags = table.flags
        if flags & FLAG_STOPPED:
            raise SidecarUnavailableError(
                f"the writer of the shared state at {self.path} (pid {table.writer}) stopped; "
                "start the host writer again",
                reason="stopped",
            )
        if not flags & FLAG_READY:
            raise SidecarUnavailableError(
                f"the writer of the shared state at {self.path} (pid {table.writer}) has not "
                "caught up with the topic yet",
                reason="loading",
            )
        bound = self._staleness or table.max_staleness
        age = self._clock() - table.heartbeat
        if age > bound:
            raise SidecarUnavailableError(
                f"the writer of the shared state at {self.path} (pid {table.writer}) gave no "
                f"sign of life for {age:.1f} s (max_staleness {bound:g} s): is it running?",
                reason="stale",
            )

    def _replaced(self) -> bool:
        """True when the path names another file than the one open (or none)."""
        try:
            info = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self._inode

    def _reopen(self) -> None:
        """Open the path again; on failure keep the reason in ``_problem``."""
        self._close()
        try:
            self._open()
        except SidecarUnavailableError as err:
            self._problem = err
            self._close()

    def _close(self) -> None:
        # Only dropped, never closed: a request thread may be in the middle of a lookup on
        # the old mapping; it is unmapped when the last reference goes.
        self._table = None
        self._words = self._doubles = None
        self._map = None
        self.check = self._check_usable

    def _open(self) -> None:
        path = self.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SidecarUnavailableError(
                f"no shared revocation state at {path}: start the host writer "
                f"(jwt-revocation sidecar --shared-path {path})",
                reason="not_started",
            ) from None
        except OSError as err:
            reason = "a symbolic link" if err.errno == errno.ELOOP else err.strerror
            raise SidecarUnavailableError(
                f"cannot open the shared revocation state at {path}: {reason}", reason="failed"
            ) from None
        try:
            info = os.fstat(fd)
            self._refuse_unsafe(info)
            if info.st_size < HEADER_BYTES:
                raise _refused(path, f"{info.st_size} bytes, shorter than its header")
            mapped = mmap.mmap(fd, info.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        table = SharedTable(memoryview(mapped))
        self._map, self._table = mapped, table
        self._words, self._doubles = table.words, table.doubles
        if table.magic != MAGIC or table.version != FORMAT_VERSION:
            raise _refused(
                path, f"not format {FORMAT_VERSION} of this package (format {table.version})"
            )
        if info.st_size != file_size(table.capacity):
            raise _refused(path, "its size does not match its capacity")
        for name, mine, theirs in (
            ("max_token_lifetime", self._lifetime, table.max_token_lifetime),
            ("max_clock_skew", self._skew, table.max_clock_skew),
        ):
            if mine is not None and mine != theirs:
                raise _refused(
                    path, f"written with {name}={theirs:g} s, this reader has {mine:g} s"
                )
        self._lifetime, self._skew = table.max_token_lifetime, table.max_clock_skew
        self._inode = (info.st_dev, info.st_ino)
        self._problem = None
        table.gate(self._clock, self._staleness, self._check_usable)
        self.check = table.check

    def _refuse_unsafe(self, info: os.stat_result) -> None:
        """Rule 4: only a regular file that no other local user can change."""
        path = self.path
        if not stat.S_ISREG(info.st_mode):
            raise _refused(path, "not a regular file")
        if info.st_uid not in self._owners:
            raise _refused(
                path,
                f"owned by uid {info.st_uid}, not by this user, root or the owner= given; "
                "another user could un-revoke tokens",
            )
        if info.st_mode & 0o022:
            raise _refused(
                path,
                f"mode {stat.S_IMODE(info.st_mode):04o} lets its group or others write it "
                "(want 0600, or 0640 with a group)",
            )
        parent = os.stat(path.parent)
        if parent.st_mode & 0o002 and not parent.st_mode & stat.S_ISVTX:
            raise _refused(
                path, f"its directory {path.parent} is writable by others without the sticky bit"
            )


def _refused(path: Path, why: str) -> SidecarUnavailableError:
    return SidecarUnavailableError(
        f"refusing the shared revocation state at {path}: {why}", reason="failed"
    )


def _group_id(group: str) -> int:
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigurationError(f"shared_group {group!r} is no group of this host") from None


def _user_id(owner: str | int) -> int:
    import pwd

    if isinstance(owner, int) or owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ConfigurationError(f"owner {owner!r} is no user of this host") from None
