"""RestartBudget: consecutive crashes exhaust it, crashes far apart never do; no broker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwt_revocation.consumer._restart import HEALTHY_RUN, MAX_BACKOFF, RestartBudget
from jwt_revocation.shared import ConfigurationError
from tests.support import FakeClock


def _budget(clock: FakeClock, max_restarts: int = 10, backoff: float = 0.5) -> RestartBudget:
    return RestartBudget(max_restarts=max_restarts, backoff=backoff, clock=clock)


def _run(budget: RestartBudget, clock: FakeClock, seconds: float) -> float | None:
    """One consumer that starts, runs ``seconds`` and crashes; what the budget answers."""
    budget.started()
    clock.advance(seconds)
    return budget.crashed()


def test_crashes_far_apart_never_exhaust_the_budget() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=10)

    # A crash an hour after each start, a thousand times: a hundred times the budget.
    waits = [_run(budget, clock, 3600) for _ in range(1000)]

    assert waits == [0.5] * 1000
    assert budget.failures == 1


def test_crashes_in_a_burst_exhaust_the_budget_after_max_restarts() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=10)

    waits = [_run(budget, clock, 0.1) for _ in range(11)]

    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, None]
    assert budget.failures == 11


def test_a_healthy_run_starts_the_count_again_from_zero() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=3)

    burst = [_run(budget, clock, 1) for _ in range(3)]
    after_a_healthy_run = _run(budget, clock, HEALTHY_RUN)
    next_burst = [_run(budget, clock, 1) for _ in range(3)]

    assert burst == [0.5, 1.0, 2.0]
    assert after_a_healthy_run == 0.5  # the first failure again, not the fourth
    assert next_burst == [1.0, 2.0, None]


def test_a_run_just_short_of_healthy_still_counts() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=1)

    assert _run(budget, clock, 1) == 0.5
    assert _run(budget, clock, HEALTHY_RUN - 0.001) is None


def test_no_restarts_allowed_gives_up_at_the_first_crash() -> None:
    clock = FakeClock()

    assert _run(_budget(clock, max_restarts=0), clock, 0) is None


def test_a_huge_budget_backs_off_at_most_max_backoff_without_overflow() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=10**9, backoff=0.5)

    waits = [_run(budget, clock, 0) for _ in range(3000)]

    assert max(waits) == MAX_BACKOFF  # type: ignore[type-var]


@given(
    max_restarts=st.integers(min_value=0, max_value=6),
    runs=st.lists(
        st.sampled_from([0.0, 0.5, 10.0, HEALTHY_RUN - 1, HEALTHY_RUN, HEALTHY_RUN + 1, 86400.0]),
        max_size=40,
    ),
)
def test_the_budget_is_exhausted_exactly_by_a_streak_of_short_runs(
    max_restarts: int, runs: list[float]
) -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=max_restarts)
    answers = [_run(budget, clock, seconds) for seconds in runs]

    streak = 0
    for seconds, answer in zip(runs, answers, strict=True):
        streak = 1 if seconds >= HEALTHY_RUN else streak + 1
        assert (answer is None) == (streak > max_restarts)
        if answer is not None:
            assert answer == min(0.5 * 2 ** (streak - 1), MAX_BACKOFF)


@pytest.mark.parametrize(
    ("max_restarts", "backoff"), [(-1, 0.5), (1.5, 0.5), (True, 0.5), (3, -1), (3, float("nan"))]
)
def test_a_wrong_budget_is_refused_at_construction(max_restarts: object, backoff: object) -> None:
    with pytest.raises(ConfigurationError, match="must be"):
        RestartBudget(max_restarts=max_restarts, backoff=backoff)  # type: ignore[arg-type]
