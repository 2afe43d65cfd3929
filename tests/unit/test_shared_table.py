"""The shared table gives RevocationState's answers, never forgets a live entry, and its file
is guarded: format, staleness, ownership and mode."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwt_revocation.consumer import RevocationState, RevocationVerifier, SharedRevocations
from jwt_revocation.consumer._shared_state import SharedStateWriter
from jwt_revocation.consumer._shared_table import (
    HEADER_BYTES,
    SharedTable,
    TableFullError,
    capacity_for,
    file_size,
)
from jwt_revocation.shared import (
    ConfigurationError,
    Event,
    SidecarUnavailableError,
    TokenRevokedError,
)
from tests.unit.test_state import (
    LIFETIME,
    NOW,
    SKEW,
    delete_user,
    revoke_all,
    revoke_jti,
    revoke_session,
    revoke_user,
)


def new_table(max_entries: int = 48) -> SharedTable:
    capacity = capacity_for(max_entries)
    buffer = memoryview(bytearray(file_size(capacity)))
    SharedTable.initialise(
        buffer,
        capacity=capacity,
        max_token_lifetime=LIFETIME,
        max_clock_skew=SKEW,
        max_staleness=30.0,
        topic="t",
        writer=1,
    )
    return SharedTable(buffer)


# Few names and instants around NOW, so events collide, absorb and expire often.
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "\x00", "é", "a:b", "1:ab"])
INSTANTS = st.sampled_from([-7200.0, -3700.0, -3600.0, -61.0, -60.5, -20.0, -10.0, 0.0, 0.5, 30.0])
ISSUERS = st.none() | st.sampled_from(["iss1", "iss2", "a"])

EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        lambda j, t, i: revoke_jti(j, NOW + t + 3600, token_issuer=i), NAMES, INSTANTS, ISSUERS
    ),
    st.builds(lambda u, t: revoke_user(u, NOW + t), NAMES, INSTANTS),
    st.builds(lambda u, t: delete_user(u, NOW + t), NAMES, INSTANTS),
    st.builds(lambda s, t: revoke_session(s, NOW + t), NAMES, INSTANTS),
    st.builds(lambda t, i: revoke_all(NOW + t, i), INSTANTS, ISSUERS),
)
TOKENS = st.tuples(
    st.none() | NAMES,
    st.none() | NAMES,
    st.none()
    | st.sampled_from([NOW - 30, NOW - 20, NOW - 10, NOW, NOW + 0.25, NOW + 0.5, NOW + 40]),
    st.none() | NAMES,
    ISSUERS,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.tuples(st.lists(EVENTS, max_size=12), st.sampled_from([0.0, 1.0, 3600.0, 3700.0])),
        max_size=5,
    ),
    tokens=st.lists(TOKENS, min_size=1, max_size=30),
)
def test_the_shared_table_answers_as_revocation_state(
    batches: list[tuple[list[Event], float]],
    tokens: list[tuple[str | None, str | None, float | None, str | None, str | None]],
) -> None:
    state = RevocationState(max_token_lifetime=LIFETIME, max_clock_skew=SKEW)
    table = new_table()
    now = NOW
    for events, later in batches:
        for event in events:
            assert table.apply(event, now) == state.apply(event, now)
        now += later
        assert table.expire(now) == state.expire(now)
        assert len(table) == len(state)
        differences = [t for t in tokens if table.check(*t) != state.check(*t)]
        assert differences == []
        # The walk without the inlined fast path (a reader's retry, a reopened file).
        assert [t for t in tokens if table.lookup(*t) != state.check(*t)] == []


def test_every_entry_of_a_nearly_full_table_is_found_and_expiry_keeps_the_live_ones() -> None:
    table = new_table(max_entries=2000)
    for n in range(2000):
        table.apply(revoke_jti(f"jti-{n}", NOW + (100 if n % 3 else 5000)), NOW)
    assert len(table) == 2000
    assert all(table.check(f"jti-{n}", None, None) == "token_revoked" for n in range(2000))
    assert table.check("never-revoked", None, None) is None
    removed = table.expire(NOW + 100 + SKEW)
    assert removed == 1333
    alive = [n for n in range(2000) if table.check(f"jti-{n}", None, None)]
    assert alive == [n for n in range(2000) if n % 3 == 0]


def test_a_full_table_refuses_more_entries_and_keeps_the_ones_it_has() -> None:
    table = new_table(max_entries=10)
    n = table.capacity
    for i in range(n):
        table.apply(revoke_jti(f"j{i}", NOW + 100), NOW)
    with pytest.raises(TableFullError, match="raise max_entries"):
        table.apply(revoke_jti("one-more", NOW + 100), NOW)
    assert all(table.check(f"j{i}", None, None) for i in range(n))


def test_a_reader_never_returns_an_answer_read_during_an_update() -> None:
    table = new_table()
    table.apply(revoke_jti("j", NOW + 100), NOW)
    raw = table._q
    raw[2] += 1  # a writer stopped between the two halves of an update
    with pytest.raises(SidecarUnavailableError, match="mid-update") as caught:
        table.check("j", None, None)
    assert caught.value.reason == "failed"


# -- the file -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def writer(path: Path, **overrides: object) -> SharedStateWriter:
    options: dict[str, object] = {
        "topic": "auth.revocations",
        "max_entries": 1000,
        "max_token_lifetime": LIFETIME,
        "max_clock_skew": SKEW,
        "max_staleness": 30.0,
    }
    options.update(overrides)
    return SharedStateWriter(path, **options)  # type: ignore[arg-type]


def reason_of(reader: SharedRevocations) -> str:
    """Why the reader fails closed: its lookup, which a verifier calls without asking
    ``ensure_usable`` first, refuses every token for the same reason."""
    with pytest.raises(SidecarUnavailableError) as caught:
        reader.ensure_usable()
    for token in (("gone", None, None), (None, "u", NOW), ("kept", "u", NOW, "s", "iss")):
        with pytest.raises(SidecarUnavailableError) as looked_up:
            reader.check(*token)
        assert looked_up.value.reason == caught.value.reason
    return caught.value.reason


def test_a_reader_fails_closed_until_the_writer_is_caught_up_then_while_it_is_silent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state"
    clock = Clock()
    reader = SharedRevocations(path, max_token_lifetime=LIFETIME, max_clock_skew=SKEW, clock=clock)
    assert reason_of(reader) == "not_started"
    keeper = writer(path)
    assert keeper.resume_offsets("auth.revocations") == {}
    assert reason_of(reader) == "loading"
    keeper.write("auth.revocations", [revoke_jti("gone", NOW + 100)], {0: 1}, clock.now)
    keeper.heartbeat("auth.revocations", clock.now)
    reader.ensure_usable()
    assert reader.check("gone", None, None) == "token_revoked"
    assert reader.check("kept", None, None) is None
    clock.now += 30
    reader.ensure_usable()
    clock.now += 0.5
    assert reason_of(reader) == "stale"
    keeper.heartbeat("auth.revocations", clock.now)
    reader.ensure_usable()
    keeper.close()
    assert reason_of(reader) == "stopped"


def test_a_restarted_writer_takes_the_file_over_with_its_entries_and_offsets(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state"
    first = writer(path)
    first.resume_offsets("auth.revocations")
    first.write("auth.revocations", [revoke_user("u", NOW - 5)], {0: 7, 3: 2}, NOW)
    first.close()
    second = writer(path)
    assert second.resume_offsets("auth.revocations") == {0: 7, 3: 2}
    assert second.took_over == 1
    reader = SharedRevocations(path, clock=lambda: NOW)
    assert reason_of(reader) == "loading"
    second.heartbeat("auth.revocations", NOW)
    assert reader.check(None, "u", NOW - 10) == "user_tokens_revoked"


def test_a_writer_with_other_settings_replaces_the_file_and_readers_follow(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state"
    first = writer(path)
    first.resume_offsets("auth.revocations")
    first.write("auth.revocations", [revoke_jti("old", NOW + 100)], {0: 1}, NOW)
    first.heartbeat("auth.revocations", NOW)
    reader = SharedRevocations(path, clock=lambda: NOW)
    assert reader.check("old", None, None) == "token_revoked"
    first.close()
    second = writer(path, max_entries=5000)
    assert second.resume_offsets("auth.revocations") == {}
    second.heartbeat("auth.revocations", NOW)
    reader.ensure_usable()
    assert reader.check("old", None, None) is None  # the new file has not been fed yet


def test_a_verifier_follows_its_reader_to_a_new_file_and_its_lookup_fails_closed(
    tmp_path: Path,
) -> None:
    # The verifier does not call ensure_usable for this source: the lookup itself must refuse.
    path = tmp_path / "state"
    clock = Clock()
    first = writer(path)
    first.resume_offsets("auth.revocations")
    first.write("auth.revocations", [revoke_jti("old", NOW + 100)], {0: 1}, NOW)
    first.heartbeat("auth.revocations", NOW)
    reader = SharedRevocations(path, clock=clock)
    verifier = RevocationVerifier(reader, key="k" * 32, algorithms=["HS256"], clock=clock)

    def claims(jti: str) -> dict[str, object]:
        return {"jti": jti, "sub": "u", "iat": int(NOW) - 10, "exp": int(NOW) + 100}

    def unavailable() -> str:
        with pytest.raises(SidecarUnavailableError) as caught:
            verifier.check_claims(claims("new"))
        return caught.value.reason

    with pytest.raises(TokenRevokedError):
        verifier.check_claims(claims("old"))
    verifier.check_claims(claims("new"))
    first.close()
    assert unavailable() == "stopped"
    second = writer(path, max_entries=5000)  # a new file replaces the first one
    second.resume_offsets("auth.revocations")
    second.write("auth.revocations", [revoke_jti("new", NOW + 100)], {0: 2}, NOW)
    assert unavailable() == "loading"
    second.heartbeat("auth.revocations", NOW)
    with pytest.raises(TokenRevokedError):
        verifier.check_claims(claims("new"))
    verifier.check_claims(claims("old"))  # the new file has not been fed it
    clock.now += 30  # the writer's bound: still fresh
    verifier.check_claims(claims("old"))
    clock.now += 0.001
    assert unavailable() == "stale"


def test_only_one_writer_per_path(tmp_path: Path) -> None:
    path = tmp_path / "state"
    writer(path).open()
    with pytest.raises(ConfigurationError, match="another writer"):
        writer(path).open()


def test_a_file_of_another_format_or_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    keeper = writer(path)
    keeper.open()
    keeper.heartbeat("auth.revocations", NOW)
    other = SharedRevocations(path, max_token_lifetime=60, max_clock_skew=SKEW, clock=lambda: NOW)
    with pytest.raises(
        SidecarUnavailableError, match="max_token_lifetime=3600 s, this reader has 60 s"
    ):
        other.ensure_usable()
    with path.open("r+b") as raw:
        raw.seek(8)
        raw.write((99).to_bytes(8, "little"))
    reader = SharedRevocations(path, max_token_lifetime=LIFETIME, max_clock_skew=SKEW)
    with pytest.raises(SidecarUnavailableError, match="not format 1") as caught:
        reader.ensure_usable()
    assert caught.value.reason == "failed"


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "state"
    writer(path).open()
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(mode)
    reader = SharedRevocations(path, max_token_lifetime=LIFETIME, max_clock_skew=SKEW)
    with pytest.raises(SidecarUnavailableError, match="lets its group or others write it"):
        reader.ensure_usable()


def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    writer(path).open()
    if os.geteuid() == 0:
        os.chown(path, 12345, -1)
        reader = SharedRevocations(path, max_token_lifetime=LIFETIME, max_clock_skew=SKEW)
        with pytest.raises(SidecarUnavailableError, match="owned by uid 12345"):
            reader.ensure_usable()
        allowed = SharedRevocations(path, owner=12345, clock=lambda: NOW)
        assert reason_of(allowed) == "loading"
    else:  # the reader is not root: a file root owns is trusted, another user's is not
        reader = SharedRevocations(
            path, max_token_lifetime=LIFETIME, max_clock_skew=SKEW, owner=os.geteuid()
        )
        assert reason_of(reader) == "loading"


def test_a_symbolic_link_and_a_short_file_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "state"
    writer(target).open()
    link = tmp_path / "link"
    link.symlink_to(target)
    reader = SharedRevocations(link, max_token_lifetime=LIFETIME, max_clock_skew=SKEW)
    with pytest.raises(SidecarUnavailableError, match="symbolic link"):
        reader.ensure_usable()
    short = tmp_path / "short"
    short.write_bytes(b"\0" * (HEADER_BYTES - 1))
    short.chmod(0o600)
    reader = SharedRevocations(short, max_token_lifetime=LIFETIME, max_clock_skew=SKEW)
    with pytest.raises(SidecarUnavailableError, match="shorter than its header"):
        reader.ensure_usable()


def test_a_reader_without_the_writers_settings_needs_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="pass the writer's values"):
        SharedRevocations(tmp_path / "missing")


def test_a_group_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "state"
    writer(path, group=str(os.getegid())).open()
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.stat().st_gid == os.getegid()


def _read_as(uid: int, gid: int, path: Path, owner: int | None) -> str:
    """``ensure_usable`` of a reader in a forked process running as ``uid``:``gid``: "ok" or
    the reason it failed closed with."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            reader = SharedRevocations(
                path, max_token_lifetime=LIFETIME, max_clock_skew=SKEW, owner=owner
            )
            reader.ensure_usable()
            answer = "ok"
        except SidecarUnavailableError as err:
            answer = f"{err.reason}: {err}"
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            answer = f"error: {err!r}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said: str = pipe.read().decode()
    os.waitpid(pid, 0)
    return said


def test_a_0640_file_with_a_named_group_is_read_by_the_groups_workers(tmp_path: Path) -> None:
    """The writer as one user, the workers as another in the file's named group: they read it
    given the writer as ``owner``, and refuse it without."""
    group = grp.getgrgid(os.getegid())
    path = tmp_path / "state"
    keeper = writer(path, group=group.gr_name)  # by name
    keeper.open()
    keeper.heartbeat("auth.revocations", time.time())
    info = path.stat()
    assert (info.st_mode & 0o777, info.st_gid) == (0o640, group.gr_gid)
    if os.geteuid() != 0:  # only root can be two users; the mode and group are checked above
        return
    shared = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        shared.chmod(0o755)
        moved = shared / "state"
        shutil.copy2(path, moved)
        os.chown(moved, 12345, group.gr_gid)  # the writer's user
        assert _read_as(12346, group.gr_gid, moved, owner=12345) == "ok"
        assert "owned by uid 12345" in _read_as(12346, group.gr_gid, moved, owner=None)
        moved.chmod(0o660)
        assert "lets its group or others write it" in _read_as(
            12346, group.gr_gid, moved, owner=12345
        )
        moved.chmod(0o600)  # not readable by the group: the worker cannot open it
        assert "Permission denied" in _read_as(12346, group.gr_gid, moved, owner=12345)
    finally:
        shutil.rmtree(shared)


def test_a_writer_that_takes_the_file_over_brings_its_own_staleness_bound(tmp_path: Path) -> None:
    path = tmp_path / "state"
    clock = Clock()
    first = writer(path, max_staleness=3600.0)
    first.open()
    first.heartbeat("auth.revocations", clock.now)
    reader = SharedRevocations(path, clock=clock)
    clock.now += 10
    reader.ensure_usable()  # 10 s old: fresh under the first writer's bound
    first.close()
    keeper = writer(path, max_staleness=2.0)
    keeper.open()
    assert reason_of(reader) == "loading"
    keeper.heartbeat("auth.revocations", clock.now)
    reader.ensure_usable()
    clock.now += 2.5
    assert reason_of(reader) == "stale"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (the tests run as root, here and in CI), unmounted whatever happens."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount
    finally:
        # Lazy: detached at once even if a file in it is still open; freed when closed.
        subprocess.run(["/usr/bin/umount", "-l", str(mount)], check=True, capture_output=True)


def test_a_table_larger_than_its_filesystem_is_refused_with_the_sizes_not_a_sigbus(
    small_tmpfs: Path,
) -> None:
    path = small_tmpfs / "state"
    needed = file_size(capacity_for(100_000))  # 2.6 MB on a 1 MiB volume
    # In a child: before the space was reserved, the writer died here of SIGBUS (exit -7).
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tests.unit.test_shared_table import writer; "
            "writer(sys.argv[1], max_entries=100_000).open()",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert child.returncode == 1, child.stderr
    last = child.stderr.strip().splitlines()[-1]
    assert last.startswith("jwt_revocation.shared._errors.ConfigurationError: ")
    assert f"the shared state at {path} needs {needed} bytes" in last
    assert "filesystem has 1048576 bytes free" in last
    assert os.listdir(small_tmpfs) == ["state.lock"]  # no temporary left filling the volume

    writer(path, max_entries=1_000).open()  # a table that fits is created
    assert path.stat().st_size == file_size(capacity_for(1_000))


def test_a_writer_removes_the_temporaries_other_writers_left(tmp_path: Path) -> None:
    path = tmp_path / "state"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    stale = [
        tmp_path / f".state.{dead.stdout.strip()}.new",
        tmp_path / f".state.{os.getppid()}.new",
    ]
    for file in stale:
        file.write_bytes(b"\0" * 4096)
    unrelated = [tmp_path / ".other.1.new", tmp_path / ".state.x.new", tmp_path / "state.new"]
    for file in unrelated:
        file.write_bytes(b"kept")

    writer(path).open()

    assert not any(file.exists() for file in stale)  # a dead pid's, and a live one's
    assert all(file.read_bytes() == b"kept" for file in unrelated)
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["state", "state.lock", ".other.1.new", ".state.x.new", "state.new"]
    )
