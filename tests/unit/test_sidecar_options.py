"""RevocationSidecar refuses bad options at construction, before it touches a broker."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwt_revocation.consumer import RevocationSidecar
from jwt_revocation.consumer._reader import CATCH_UP_POLL, poll_wait
from jwt_revocation.shared import ConfigurationError


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_token_lifetime": 0}, "max_token_lifetime must be positive"),
        ({"max_token_lifetime": "forever"}, "max_token_lifetime must be a duration"),
        ({"on_stale": "maybe"}, "on_stale must be 'reject' or 'allow'"),
        ({"max_entries": 0}, "max_entries must be at least 1"),
        ({"max_entries": "10"}, "max_entries must be an integer; got str"),
        ({"max_restarts": -1}, "max_restarts must be at least 0"),
        ({"poll_timeout": 0}, "poll_timeout must be positive"),
        ({"contact_interval": -1}, "contact_interval must not be negative"),
        ({"contact_interval": "a second"}, "contact_interval must be a duration"),
        ({"sweep_interval": 0}, "sweep_interval must be positive"),
        ({"snapshot_interval": -1}, "snapshot_interval must not be negative"),
        ({"replay_window": "soon"}, "replay_window must be a duration"),
        ({"max_staleness": float("inf")}, "max_staleness must be a finite duration"),
        ({"restart_backoff": -0.5}, "restart_backoff must not be negative"),
    ],
)
def test_bad_options_are_refused_with_their_name(options: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {"max_token_lifetime": "1h", **options}

    with pytest.raises(ConfigurationError, match=message):
        RevocationSidecar("127.0.0.1:1", "t", **kwargs)


def test_durations_are_read_the_same_way_everywhere() -> None:
    sidecar = RevocationSidecar(
        "127.0.0.1:1", "t", max_token_lifetime="15m", max_clock_skew=30, max_staleness="500ms"
    )

    assert sidecar.max_token_lifetime.total_seconds() == 900
    assert sidecar.max_clock_skew.total_seconds() == 30
    assert sidecar.max_staleness.total_seconds() == 0.5
    assert sidecar.status.value == "new"


@given(
    poll=st.floats(min_value=0.001, max_value=60),
    until_due=st.floats(min_value=-60, max_value=60),
    caught_up=st.booleans(),
)
def test_the_loop_waits_for_records_until_its_next_chore_and_briefly_while_catching_up(
    poll: float, until_due: float, caught_up: bool
) -> None:
    wait = poll_wait(poll, until_due, caught_up=caught_up)
    assert 0 <= wait <= max(until_due, 0.0)  # a chore is never late because of the wait
    assert wait <= poll
    if not caught_up:
        assert wait <= CATCH_UP_POLL
    limit = poll if caught_up else min(poll, CATCH_UP_POLL)
    if until_due >= limit:
        assert wait == limit  # nothing due sooner: the whole long poll
    else:
        assert wait == max(until_due, 0.0)  # woken exactly when the chore is due


def test_a_quiet_sidecar_wakes_every_half_second_by_default() -> None:
    sidecar = RevocationSidecar("127.0.0.1:1", "t", max_token_lifetime="1h")
    poll = sidecar.options.poll_timeout.total_seconds()
    assert poll == 0.5
    assert poll_wait(poll, 60.0, caught_up=True) == 0.5
    assert poll_wait(poll, 0.3, caught_up=True) == 0.3  # contact due in 0.3 s
    assert poll_wait(2.0, 60.0, caught_up=False) == CATCH_UP_POLL
