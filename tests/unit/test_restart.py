"""RestartBudget: consecutive crashes exhaust it, crashes far apart never do; no broker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka import errors as kafka_errors

from jwt_revocation.consumer._restart import HEALTHY_RUN, MAX_BACKOFF, RestartBudget, unreachable
from jwt_revocation.shared import ConfigurationError, KafkaAccessError
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


def test_an_outage_never_exhausts_the_budget_and_retries_at_the_capped_backoff() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=2)

    retries = []
    for _ in range(1000):  # hours of failed starts: five hundred times the budget
        budget.started()
        clock.advance(10)  # each start gives up within its own timeouts
        retries.append(budget.unreachable())
        clock.advance(retries[-1].backoff)

    assert [r.backoff for r in retries[:8]] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert {r.backoff for r in retries[7:]} == {MAX_BACKOFF}
    assert [r.attempt for r in retries] == list(range(1, 1001))
    assert budget.failures == 0
    assert retries[-1].outage == pytest.approx(sum(10 + r.backoff for r in retries[:-1]))


def test_an_outage_is_reported_once_a_minute_not_at_every_attempt() -> None:
    clock = FakeClock()
    budget = _budget(clock, backoff=30)

    reports = []
    for _ in range(20):  # 20 attempts 10 + 30 s apart: 800 s of outage
        budget.started()
        clock.advance(10)
        retry = budget.unreachable()
        reports.append(retry.report)
        clock.advance(retry.backoff)

    # The first attempt, then the first attempt at least 60 s after the last report.
    assert reports == [True, False] * 10


def test_an_outage_neither_adds_to_nor_resets_a_crash_loop() -> None:
    clock = FakeClock()
    budget = _budget(clock, max_restarts=3)

    assert [_run(budget, clock, 0.1) for _ in range(2)] == [0.5, 1.0]
    for _ in range(50):
        budget.started()
        clock.advance(1)
        budget.unreachable()
    budget.reached()  # the brokers answer; the record that crashed the consumer still does

    assert [_run(budget, clock, 0.1) for _ in range(2)] == [2.0, None]


def test_a_new_outage_starts_from_the_first_backoff_once_the_brokers_answered() -> None:
    clock = FakeClock()
    budget = _budget(clock)
    for _ in range(10):
        budget.started()
        budget.unreachable()
    budget.reached()
    clock.advance(3600)

    budget.started()
    again = budget.unreachable()

    assert (again.backoff, again.attempt, again.outage, again.report) == (0.5, 1, 0.0, True)


@pytest.mark.parametrize(
    "error",
    [
        KafkaAccessError("cannot reach Kafka", reason="unreachable"),
        kafka_errors.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9092"),
        kafka_errors.KafkaConnectionError("111 ECONNREFUSED"),
        kafka_errors.NodeNotReadyError(1),
        kafka_errors.RequestTimedOutError(),
    ],
)
def test_errors_that_say_no_broker_answers_are_an_outage(error: Exception) -> None:
    assert unreachable(error)
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = error
    assert unreachable(wrapped)  # found through the cause chain


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug in apply"),
        ValueError("a record that crashes the decoder"),
        KafkaAccessError("bad password", reason="authentication_failed"),
        KafkaAccessError("untrusted", reason="untrusted_certificate"),
        KafkaAccessError("ACL", reason="not_authorized"),
        kafka_errors.TopicAuthorizationFailedError(),
        kafka_errors.CorruptRecordError(),
    ],
)
def test_other_errors_keep_the_budget(error: Exception) -> None:
    assert not unreachable(error)
