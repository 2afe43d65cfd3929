"""RevocationState: the merge rules, expiry, the one-second ``iat`` rule and order independence."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jwt_revocation.consumer import RevocationState, StateSnapshot
from jwt_revocation.shared import (
    AllTokensRevoked,
    Event,
    SessionRevoked,
    TokenRevoked,
    UserDeleted,
    UserTokensRevoked,
)

MakeUserEvent = Callable[[str, float], UserTokensRevoked | UserDeleted]
NO_ENTRIES = dict.fromkeys(
    [
        "token_revoked",
        "user_tokens_revoked",
        "user_deleted",
        "session_revoked",
        "all_tokens_revoked",
    ],
    0,
)

LIFETIME = 3600.0
SKEW = 60.0
NOW = 1_800_000_000.0
"""A whole second, so ``NOW + 0.25`` has a sub-second part that rounding would lose."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    """An aware datetime at exactly ``seconds`` since the epoch (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=round(seconds * 1_000_000))


def revoke_jti(
    jti: str, exp: float, user_id: str = "alice", token_issuer: str | None = None
) -> TokenRevoked:
    return TokenRevoked(
        issuer="auth",
        occurred_at=_at(NOW),
        jti=jti,
        user_id=user_id,
        expires_at=_at(exp),
        token_issuer=token_issuer,
    )


def revoke_session(session_id: str, not_before: float, user_id: str = "alice") -> SessionRevoked:
    return SessionRevoked(
        issuer="auth",
        occurred_at=_at(NOW),
        user_id=user_id,
        session_id=session_id,
        not_before=_at(not_before),
    )


def revoke_all(not_before: float, token_issuer: str | None = None) -> AllTokensRevoked:
    return AllTokensRevoked(
        issuer="auth", occurred_at=_at(NOW), not_before=_at(not_before), token_issuer=token_issuer
    )


def revoke_user(user_id: str, not_before: float) -> UserTokensRevoked:
    return UserTokensRevoked(
        issuer="auth", occurred_at=_at(NOW), user_id=user_id, not_before=_at(not_before)
    )


def delete_user(user_id: str, at: float) -> UserDeleted:
    return UserDeleted(issuer="auth", occurred_at=_at(NOW), user_id=user_id, at=_at(at))


def new_state() -> RevocationState:
    return RevocationState(max_token_lifetime=LIFETIME, max_clock_skew=SKEW)


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "skew"), [(0.0, 60.0), (-1.0, 60.0), (3600.0, -0.001)], ids=["zero", "neg", "skew"]
)
def test_invalid_limits_are_refused(lifetime: float, skew: float) -> None:
    with pytest.raises(ValueError, match="max_"):
        RevocationState(max_token_lifetime=lifetime, max_clock_skew=skew)


def test_zero_clock_skew_is_allowed() -> None:
    state = RevocationState(max_token_lifetime=LIFETIME, max_clock_skew=0)

    assert state.apply(revoke_jti("j", NOW + 1), NOW)
    assert state.expire(NOW + 1) == 1


def test_new_state_is_empty() -> None:
    state = new_state()

    assert len(state) == 0
    assert state.snapshot() == StateSnapshot()
    assert state.check("j", "alice", NOW) is None


# -- jtis ---------------------------------------------------------------------------------


def test_jti_is_revoked_until_exp_plus_skew_then_expired() -> None:
    state = new_state()
    exp = NOW + 300

    assert state.apply(revoke_jti("j1", exp), NOW) is True
    assert state.check("j1", None, None) == "token_revoked"
    assert len(state) == 1

    assert state.expire(exp + SKEW - 0.001) == 0
    assert state.check("j1", None, None) == "token_revoked"
    assert len(state) == 1

    assert state.expire(exp + SKEW) == 1
    assert state.check("j1", None, None) is None
    assert len(state) == 0
    assert state.snapshot() == StateSnapshot()


def test_expire_removes_only_dead_jtis() -> None:
    state = new_state()
    state.apply_all([revoke_jti("early", NOW + 10), revoke_jti("late", NOW + 1000)], NOW)
    assert len(state) == 2

    assert state.expire(NOW + 10 + SKEW) == 1

    assert len(state) == 1
    assert state.snapshot().jtis == {"late": int(NOW) + 1000}
    assert state.counts() == {**NO_ENTRIES, "token_revoked": 1}


def test_jti_exp_is_rounded_up_to_the_whole_second() -> None:
    state = new_state()

    state.apply(revoke_jti("j1", NOW + 10.2), NOW)

    assert state.snapshot().jtis == {"j1": int(NOW) + 11}
    assert state.expire(NOW + 10.2 + SKEW) == 0
    assert state.expire(NOW + 11 + SKEW) == 1


def test_jti_revoked_twice_keeps_the_later_exp() -> None:
    state = new_state()

    assert state.apply(revoke_jti("j1", NOW + 100), NOW) is True
    assert state.apply(revoke_jti("j1", NOW + 500), NOW) is True
    assert state.apply(revoke_jti("j1", NOW + 200), NOW) is False
    assert state.apply(revoke_jti("j1", NOW + 500), NOW) is False

    assert state.snapshot().jtis == {"j1": int(NOW) + 500}
    assert len(state) == 1


def test_jti_revocation_does_not_depend_on_the_user() -> None:
    state = new_state()
    state.apply(revoke_jti("j1", NOW + 100, user_id="alice"), NOW)

    assert state.check("j1", "bob", NOW) == "token_revoked"
    assert state.check("j1", None, None) == "token_revoked"
    assert state.check("j2", "alice", NOW - 1000) is None


@pytest.mark.parametrize("exp", [NOW - SKEW, NOW - SKEW - 0.5, NOW - 10_000])
def test_moot_jti_is_not_stored(exp: float) -> None:
    state = new_state()

    assert state.apply(revoke_jti("j1", exp), NOW) is False

    assert len(state) == 0
    assert state.check("j1", None, None) is None


def test_jti_just_inside_the_skew_is_stored() -> None:
    state = new_state()

    assert state.apply(revoke_jti("j1", NOW - SKEW + 1), NOW) is True
    assert state.check("j1", None, None) == "token_revoked"


# -- cutoffs and deletions ----------------------------------------------------------------


def test_cutoffs_keep_the_latest_not_before() -> None:
    forward, backward = new_state(), new_state()

    assert forward.apply(revoke_user("alice", NOW - 10), NOW) is True
    assert forward.apply(revoke_user("alice", NOW - 5), NOW) is True
    assert backward.apply(revoke_user("alice", NOW - 5), NOW) is True
    assert backward.apply(revoke_user("alice", NOW - 10), NOW) is False
    assert backward.apply(revoke_user("alice", NOW - 5), NOW) is False

    assert forward.snapshot() == backward.snapshot() == StateSnapshot(cutoffs={"alice": NOW - 5})
    assert forward.check(None, "alice", NOW - 7) == "user_tokens_revoked"


def test_deletions_keep_the_latest_instant() -> None:
    state = new_state()

    assert state.apply(delete_user("alice", NOW - 5), NOW) is True
    assert state.apply(delete_user("alice", NOW - 10), NOW) is False
    assert state.apply(delete_user("alice", NOW - 1), NOW) is True

    assert state.snapshot() == StateSnapshot(deletions={"alice": NOW - 1})


@pytest.mark.parametrize("cutoff", [NOW - 20, NOW - 10], ids=["earlier", "equal"])
def test_deletion_absorbs_an_earlier_or_equal_cutoff_held_before(cutoff: float) -> None:
    state = new_state()
    state.apply(revoke_user("alice", cutoff), NOW)

    assert state.apply(delete_user("alice", NOW - 10), NOW) is True

    assert state.snapshot() == StateSnapshot(deletions={"alice": NOW - 10})
    assert len(state) == 1


@pytest.mark.parametrize("cutoff", [NOW - 20, NOW - 10], ids=["earlier", "equal"])
def test_deletion_absorbs_an_earlier_or_equal_cutoff_arriving_after(cutoff: float) -> None:
    state = new_state()
    state.apply(delete_user("alice", NOW - 10), NOW)

    assert state.apply(revoke_user("alice", cutoff), NOW) is False

    assert state.snapshot() == StateSnapshot(deletions={"alice": NOW - 10})
    assert state.check(None, "alice", NOW - 15) == "user_deleted"


@pytest.mark.parametrize("deletion_first", [True, False])
def test_later_cutoff_survives_a_deletion(deletion_first: bool) -> None:
    state = new_state()
    events: list[Event] = [delete_user("alice", NOW - 100), revoke_user("alice", NOW - 10)]
    if not deletion_first:
        events.reverse()

    assert state.apply_all(events, NOW) == 2

    assert state.snapshot() == StateSnapshot(
        cutoffs={"alice": NOW - 10}, deletions={"alice": NOW - 100}
    )
    assert state.check(None, "alice", NOW - 200) == "user_deleted"
    assert state.check(None, "alice", NOW - 50) == "user_tokens_revoked"
    assert state.check(None, "alice", NOW - 5) is None
    assert state.has_user_entry("alice")


def test_deletion_removes_only_its_own_users_cutoff() -> None:
    state = new_state()
    state.apply_all([revoke_user("alice", NOW - 20), revoke_user("bob", NOW - 20)], NOW)

    state.apply(delete_user("alice", NOW - 10), NOW)

    assert state.snapshot() == StateSnapshot(
        cutoffs={"bob": NOW - 20}, deletions={"alice": NOW - 10}
    )


@pytest.mark.parametrize("make", [revoke_user, delete_user], ids=["cutoff", "deletion"])
def test_moot_user_event_is_not_stored(make: MakeUserEvent) -> None:
    state = new_state()
    boundary = NOW - LIFETIME - SKEW

    assert state.apply(make("alice", boundary), NOW) is False
    assert state.apply(make("alice", boundary - 1000), NOW) is False
    assert len(state) == 0
    assert state.snapshot() == StateSnapshot()
    assert not state.has_user_entry("alice")

    assert state.apply(make("alice", boundary + 0.5), NOW) is True
    assert len(state) == 1


def test_apply_all_counts_only_the_events_that_changed_the_state() -> None:
    state = new_state()
    events: list[Event] = [
        revoke_jti("j1", NOW + 100),
        revoke_jti("j1", NOW + 100),  # duplicate
        revoke_jti("old", NOW - 1000),  # moot
        revoke_user("alice", NOW - 10),
        delete_user("bob", NOW - LIFETIME - SKEW - 1),  # moot
    ]

    assert state.apply_all(events, NOW) == 2
    assert len(state) == 2


@pytest.mark.parametrize("make", [revoke_user, delete_user], ids=["cutoff", "deletion"])
def test_user_entry_expires_after_lifetime_plus_skew(make: MakeUserEvent) -> None:
    state = new_state()
    instant = NOW - 10
    state.apply(make("alice", instant), NOW)
    assert len(state) == 1

    assert state.expire(instant + LIFETIME + SKEW - 0.001) == 0
    assert state.check(None, "alice", instant - 1) is not None

    assert state.expire(instant + LIFETIME + SKEW) == 1
    assert len(state) == 0
    assert state.check(None, "alice", instant - 1) is None
    assert not state.has_user_entry("alice")


def test_expire_counts_every_kind() -> None:
    state = new_state()
    state.apply_all(
        [
            revoke_jti("j1", NOW + 1),
            revoke_user("alice", NOW - 5),
            delete_user("bob", NOW - 5),
            revoke_user("carol", NOW),
        ],
        NOW,
    )
    assert state.counts() == {
        **NO_ENTRIES,
        "token_revoked": 1,
        "user_tokens_revoked": 2,
        "user_deleted": 1,
    }

    assert state.expire(NOW - 5 + LIFETIME + SKEW) == 3

    assert state.snapshot() == StateSnapshot(cutoffs={"carol": NOW})


# -- the one-second iat rule --------------------------------------------------------------

SECOND = NOW + 100
"""A whole second at which the cutoffs below happen."""


@pytest.mark.parametrize("make", [revoke_user, delete_user], ids=["cutoff", "deletion"])
@pytest.mark.parametrize(
    ("instant", "iat", "revoked"),
    [
        # cutoff exactly on a whole second
        pytest.param(SECOND, SECOND, True, id="whole-cutoff,int-iat-same-second"),
        pytest.param(SECOND, SECOND - 1, True, id="whole-cutoff,int-iat-second-before"),
        pytest.param(SECOND, SECOND - 0.001, True, id="whole-cutoff,sub-second-iat-before"),
        pytest.param(SECOND, SECOND + 0.5, False, id="whole-cutoff,sub-second-iat-after"),
        pytest.param(SECOND, SECOND + 1, False, id="whole-cutoff,int-iat-next-second"),
        # cutoff inside a second
        pytest.param(SECOND + 0.3, SECOND, True, id="mid-cutoff,int-iat-same-second"),
        pytest.param(SECOND + 0.3, SECOND + 0.1, True, id="mid-cutoff,sub-second-iat-before"),
        pytest.param(SECOND + 0.3, SECOND + 0.5, False, id="mid-cutoff,sub-second-iat-after"),
        pytest.param(SECOND + 0.3, SECOND + 1, False, id="mid-cutoff,int-iat-next-second"),
        pytest.param(SECOND + 0.999, SECOND, True, id="late-cutoff,int-iat-same-second"),
    ],
)
def test_iat_resolution_rule(
    make: MakeUserEvent, instant: float, iat: float, revoked: bool
) -> None:
    state = new_state()
    state.apply(make("alice", instant), NOW)
    expected = (
        ("user_tokens_revoked" if make is revoke_user else "user_deleted") if revoked else None
    )

    assert state.check(None, "alice", iat) == expected
    assert state.check("some-jti", "alice", iat) == expected


@pytest.mark.parametrize("make", [revoke_user, delete_user], ids=["cutoff", "deletion"])
def test_missing_iat_counts_as_issued_long_ago(make: MakeUserEvent) -> None:
    state = new_state()
    state.apply(make("alice", NOW - 10), NOW)

    assert state.check(None, "alice", None) is not None
    assert state.check(None, None, None) is None


def test_other_users_are_never_affected() -> None:
    state = new_state()
    state.apply_all(
        [
            revoke_jti("alice-jti", NOW + 100, user_id="alice"),
            revoke_user("alice", NOW + 50),
            delete_user("alice", NOW + 10),
            revoke_user("alice-2", NOW),
        ],
        NOW,
    )

    for iat in (None, NOW - 1000, NOW, NOW + 10, NOW + 50, NOW + 60):
        assert state.check(None, "bob", iat) is None
        assert state.check("bob-jti", "bob", iat) is None
        assert state.check(None, "alic", iat) is None
        assert state.check(None, "ALICE", iat) is None
    assert state.check(None, "alice", NOW) == "user_deleted"
    assert not state.has_user_entry("bob")


# -- sessions, everyone's cutoffs, jtis scoped by issuer ------------------------------------

Rule = Callable[[RevocationState, float, float | None], str | None]
"""Apply a revocation at an instant to a state; return the check of a token issued at iat."""


def _session_rule(state: RevocationState, instant: float, iat: float | None) -> str | None:
    state.apply(revoke_session("s1", instant), NOW)
    return state.check(None, "alice", iat, "s1")


def _everyone_rule(state: RevocationState, instant: float, iat: float | None) -> str | None:
    state.apply(revoke_all(instant), NOW)
    return state.check(None, "alice", iat, None, "https://auth")


def _issuer_rule(state: RevocationState, instant: float, iat: float | None) -> str | None:
    state.apply(revoke_all(instant, token_issuer="https://auth"), NOW)
    return state.check(None, "alice", iat, None, "https://auth")


RULES = {"session": _session_rule, "everyone": _everyone_rule, "issuer": _issuer_rule}
REASONS = {
    "session": "session_revoked",
    "everyone": "all_tokens_revoked",
    "issuer": "all_tokens_revoked",
}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize(
    ("instant", "iat", "revoked"),
    [
        pytest.param(SECOND, SECOND, True, id="whole,int-iat-same-second"),
        pytest.param(SECOND, SECOND - 0.001, True, id="whole,sub-second-iat-before"),
        pytest.param(SECOND, SECOND + 0.5, False, id="whole,sub-second-iat-after"),
        pytest.param(SECOND, SECOND + 1, False, id="whole,int-iat-next-second"),
        pytest.param(SECOND + 0.3, SECOND, True, id="mid,int-iat-same-second"),
        pytest.param(SECOND + 0.3, SECOND + 0.5, False, id="mid,sub-second-iat-after"),
        pytest.param(SECOND + 0.3, None, True, id="mid,no-iat"),
    ],
)
def test_session_and_everyones_cutoffs_follow_the_one_second_rule(
    rule: str, instant: float, iat: float | None, revoked: bool
) -> None:
    assert RULES[rule](new_state(), instant, iat) == (REASONS[rule] if revoked else None)


def test_a_session_revocation_matches_only_its_session() -> None:
    state = new_state()
    state.apply(revoke_session("s1", NOW), NOW)

    assert state.check(None, "alice", NOW - 1, "s1") == "session_revoked"
    assert state.check(None, "bob", NOW - 1, "s1") == "session_revoked"  # the sid alone
    assert state.check(None, "alice", NOW - 1, "s2") is None
    assert state.check(None, "alice", NOW - 1, None) is None
    assert state.check("j", "alice", NOW + 1, "s1") is None  # issued after: a new login
    assert not state.has_user_entry("alice")


def test_sessions_keep_the_latest_not_before_and_expire_like_user_cutoffs() -> None:
    state = new_state()

    assert state.apply(revoke_session("s1", NOW - 10), NOW) is True
    assert state.apply(revoke_session("s1", NOW - 20), NOW) is False
    assert state.apply(revoke_session("s1", NOW - 5), NOW) is True
    assert state.apply(revoke_session("s2", NOW - LIFETIME - SKEW), NOW) is False  # moot

    assert state.snapshot() == StateSnapshot(sessions={"s1": NOW - 5})
    assert state.counts() == {**NO_ENTRIES, "session_revoked": 1}
    assert state.expire(NOW - 5 + LIFETIME + SKEW - 0.001) == 0
    assert state.expire(NOW - 5 + LIFETIME + SKEW) == 1
    assert state.check(None, "alice", NOW - 100, "s1") is None
    assert len(state) == 0


def test_everyones_cutoff_scoped_to_an_issuer_spares_the_other_issuers() -> None:
    state = new_state()
    state.apply(revoke_all(NOW, token_issuer="https://a"), NOW)

    assert state.check("j", "alice", NOW - 1, None, "https://a") == "all_tokens_revoked"
    assert state.check("j", "alice", NOW - 1, None, "https://b") is None
    assert state.check("j", "alice", NOW - 1, None, None) is None  # no iss: not that issuer's
    assert state.check("j", "alice", NOW + 1, None, "https://a") is None


def test_everyones_cutoff_for_every_issuer_and_for_one_are_held_apart() -> None:
    forward, backward = new_state(), new_state()
    events = [revoke_all(NOW - 10), revoke_all(NOW - 5, "https://a"), revoke_all(NOW - 20)]

    assert forward.apply_all(events, NOW) == 2
    assert backward.apply_all(reversed(events), NOW) == 3

    assert forward.snapshot() == backward.snapshot()
    assert forward.snapshot().all_tokens == {None: NOW - 10, "https://a": NOW - 5}
    assert forward.check(None, None, NOW - 7, None, "https://a") == "all_tokens_revoked"
    assert forward.check(None, None, NOW - 7, None, "https://b") is None
    assert forward.check(None, None, NOW - 12, None, "https://b") == "all_tokens_revoked"
    assert forward.counts() == {**NO_ENTRIES, "all_tokens_revoked": 2}
    assert forward.expire(NOW - 10 + LIFETIME + SKEW) == 1
    assert forward.expire(NOW - 5 + LIFETIME + SKEW) == 1
    assert forward.check(None, None, NOW - 100, None, "https://a") is None


def test_a_jti_scoped_to_an_issuer_does_not_revoke_another_issuers_token() -> None:
    state = new_state()
    state.apply(revoke_jti("j1", NOW + 100, token_issuer="https://a"), NOW)

    assert state.check("j1", "alice", NOW, None, "https://a") == "token_revoked"
    assert state.check("j1", "alice", NOW, None, "https://b") is None
    assert state.check("j1", "alice", NOW, None, None) is None
    assert state.check("j2", "alice", NOW, None, "https://a") is None
    assert state.counts() == {**NO_ENTRIES, "token_revoked": 1}


def test_a_jti_without_an_issuer_revokes_the_jti_of_every_issuer() -> None:
    state = new_state()
    state.apply(revoke_jti("j1", NOW + 100), NOW)

    for issuer in ("https://a", "https://b", None):
        assert state.check("j1", "alice", NOW, None, issuer) == "token_revoked"


def test_scoped_jtis_merge_per_issuer_and_expire() -> None:
    state = new_state()

    assert state.apply(revoke_jti("j1", NOW + 100, token_issuer="a"), NOW) is True
    assert state.apply(revoke_jti("j1", NOW + 50, token_issuer="a"), NOW) is False
    assert state.apply(revoke_jti("j1", NOW + 10, token_issuer="b"), NOW) is True
    assert state.apply(revoke_jti("j1", NOW + 10), NOW) is True  # every issuer: held apart
    assert state.apply(revoke_jti("j2", NOW - SKEW, token_issuer="a"), NOW) is False  # moot

    assert state.snapshot().issuer_jtis == {
        "a": {"j1": int(NOW) + 100},
        "b": {"j1": int(NOW) + 10},
    }
    assert len(state) == 3
    assert state.expire(NOW + 10 + SKEW) == 2
    assert state.snapshot() == StateSnapshot(issuer_jtis={"a": {"j1": int(NOW) + 100}})
    assert state.check("j1", None, None, None, "b") is None
    assert state.expire(NOW + 100 + SKEW) == 1
    assert state.snapshot() == StateSnapshot()


def test_a_state_whose_rare_entries_expired_answers_as_before() -> None:
    state = new_state()
    state.apply_all([revoke_session("s1", NOW), revoke_all(NOW, "a")], NOW)
    state.expire(NOW + LIFETIME + SKEW)

    assert state.check("j", "alice", NOW - 10, "s1", "a") is None
    assert state.apply(revoke_all(NOW + LIFETIME, None), NOW + LIFETIME)
    assert state.check("j", "alice", NOW, "s1", "a") == "all_tokens_revoked"


def test_load_merges_every_kind_of_entry() -> None:
    source = new_state()
    source.apply_all(
        [
            revoke_jti("j1", NOW + 100),
            revoke_jti("j2", NOW + 100, token_issuer="a"),
            revoke_user("alice", NOW - 5),
            delete_user("bob", NOW - 5),
            revoke_session("s1", NOW - 5),
            revoke_all(NOW - 5),
            revoke_all(NOW - 6, "a"),
        ],
        NOW,
    )
    target = new_state()

    assert target.load(source.snapshot(), NOW) == 7
    assert target.load(source.snapshot(), NOW) == 0

    assert target.snapshot() == source.snapshot()
    assert target.check(None, None, NOW - 10, "s1", None) == "session_revoked"


# -- properties ---------------------------------------------------------------------------

_JTIS = ["j0", "j1", "j2", "j3"]
_USERS = ["u0", "u1", "u2"]
_SESSIONS = ["s0", "s1"]
_ISSUERS = [None, "a", "b"]

# Instants on a half-second grid so that ties between events are common, around NOW and
# around both moot boundaries (NOW - SKEW for jtis, NOW - LIFETIME - SKEW for users).
_instants = st.one_of(
    st.integers(-12, 12).map(lambda k: NOW + k * 0.5),
    st.integers(-2, 2).map(lambda k: NOW - SKEW + k * 0.5),
    st.integers(-2, 2).map(lambda k: NOW - LIFETIME - SKEW + k * 0.5),
)
_events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        revoke_jti,
        st.sampled_from(_JTIS),
        _instants,
        st.sampled_from(_USERS),
        st.sampled_from(_ISSUERS),
    ),
    st.builds(revoke_user, st.sampled_from(_USERS), _instants),
    st.builds(delete_user, st.sampled_from(_USERS), _instants),
    st.builds(revoke_session, st.sampled_from(_SESSIONS), _instants, st.sampled_from(_USERS)),
    st.builds(revoke_all, _instants, st.sampled_from(_ISSUERS)),
)


@st.composite
def _stream_and_shuffled_copy(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    events = draw(st.lists(_events, max_size=25))
    duplicates = draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    shuffled = draw(st.permutations(events + duplicates))
    return events, shuffled


@settings(max_examples=300)
@given(_stream_and_shuffled_copy())
def test_any_order_with_duplicates_gives_the_same_snapshot(
    streams: tuple[list[Event], list[Event]],
) -> None:
    original, shuffled = streams
    first, second = new_state(), new_state()

    first.apply_all(original, NOW)
    second.apply_all(shuffled, NOW)

    assert second.snapshot() == first.snapshot()
    assert len(second) == len(first)


def _reference_snapshot(events: list[Event], now: float) -> StateSnapshot:
    """The merge rules, written down independently: unions and maxima of the non-moot events."""
    jtis: dict[str, int] = {}
    scoped: dict[str, dict[str, int]] = {}
    cutoffs: dict[str, float] = {}
    deletions: dict[str, float] = {}
    sessions: dict[str, float] = {}
    everyone: dict[str | None, float] = {}
    for event in events:
        if isinstance(event, TokenRevoked):
            exp = math.ceil(event.expires_at.timestamp())
            held = jtis if event.token_issuer is None else scoped.get(event.token_issuer, {})
            if exp + SKEW > now:
                held[event.jti] = max(exp, held.get(event.jti, exp))
                if event.token_issuer is not None:
                    scoped[event.token_issuer] = held
        elif isinstance(event, SessionRevoked | AllTokensRevoked):
            instant = event.not_before.timestamp()
            table: dict[Any, float] = sessions if isinstance(event, SessionRevoked) else everyone
            key = event.session_id if isinstance(event, SessionRevoked) else event.token_issuer
            if instant + LIFETIME + SKEW > now:
                table[key] = max(instant, table.get(key, instant))
        elif isinstance(event, UserTokensRevoked):
            instant = event.not_before.timestamp()
            if instant + LIFETIME + SKEW > now:
                cutoffs[event.user_id] = max(instant, cutoffs.get(event.user_id, instant))
        else:
            instant = event.at.timestamp()
            if instant + LIFETIME + SKEW > now:
                deletions[event.user_id] = max(instant, deletions.get(event.user_id, instant))
    cutoffs = {user: t for user, t in cutoffs.items() if t > deletions.get(user, -math.inf)}
    return StateSnapshot(jtis, cutoffs, deletions, scoped, sessions, everyone)


@settings(max_examples=300)
@given(st.lists(_events, max_size=30))
def test_state_matches_a_reference_model(events: list[Event]) -> None:
    state = new_state()

    state.apply_all(events, NOW)

    assert state.snapshot() == _reference_snapshot(events, NOW)
    assert len(state) == len(state.snapshot()) == sum(state.counts().values())


_tokens = st.tuples(
    st.sampled_from([None, *_JTIS]),
    st.sampled_from([None, *_USERS]),
    st.one_of(st.none(), _instants),
    st.sampled_from([None, *_SESSIONS]),
    st.sampled_from(_ISSUERS),
)


@settings(max_examples=300)
@given(_stream_and_shuffled_copy(), st.lists(_tokens, max_size=10))
def test_any_order_with_duplicates_gives_the_same_answers(
    streams: tuple[list[Event], list[Event]],
    tokens: list[tuple[str | None, str | None, float | None, str | None, str | None]],
) -> None:
    original, shuffled = streams
    first, second = new_state(), new_state()

    first.apply_all(original, NOW)
    second.apply_all(shuffled, NOW)

    for jti, user, iat, session, issuer in tokens:
        assert second.check(jti, user, iat, session, issuer) == first.check(
            jti, user, iat, session, issuer
        )


def test_a_cutoff_later_than_a_deletion_counts_as_an_added_entry() -> None:
    state = RevocationState(max_token_lifetime=3600, max_clock_skew=60)
    now = 1_800_000_000.0
    deleted = UserDeleted(
        issuer="t",
        occurred_at=datetime.fromtimestamp(now, UTC),
        user_id="u",
        at=datetime.fromtimestamp(now - 10, UTC),
    )
    later = UserTokensRevoked(
        issuer="t",
        occurred_at=datetime.fromtimestamp(now, UTC),
        user_id="u",
        not_before=datetime.fromtimestamp(now - 5, UTC),
    )
    state.apply(deleted, now)
    assert state.adds_entry(later)
    before = len(state)
    state.apply(later, now)
    assert len(state) == before + 1
