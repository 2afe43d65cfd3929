"""When a topic counts as found (shared/_topic.py rules 1-3), from scripted broker answers.

Each round of questions returns what every broker says; time moves only when the wait sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from jwt_revocation.shared import KafkaAccessError, TopicError, TopicNotFoundError, _topic
from jwt_revocation.shared._topic import TOPIC_APPEAR_TIMEOUT, _await_topic, _BrokerView, _view
from tests.support import FakeClock

PARTITION = {"error_code": 0, "partition_index": 0, "leader_id": 1, "replica_nodes": [1, 2, 3]}
SET = {"retention.ms": "90000000", "min.insync.replicas": "2"}


def listed(node: int, configs: dict[str, str] | None = None) -> _BrokerView:
    return _BrokerView(node, 0, (PARTITION,), configs)


def unknown(node: int) -> _BrokerView:
    return _BrokerView(node, 3)


Rounds = Callable[[int], list[_BrokerView]]


class Brokers:
    """Scripted answers: ``rounds(n)`` is what the brokers say at the n-th round (from 0)."""

    def __init__(self, rounds: Rounds) -> None:
        self.rounds = rounds
        self.asked = 0
        self.clock = FakeClock(0.0)

    def ask(self, admin: Any, topic: str, *, configs: bool) -> list[_BrokerView]:
        views = self.rounds(self.asked)
        self.asked += 1
        return views

    def wait(self, wait: float = 10.0, **kwargs: Any) -> list[_BrokerView]:
        return _await_topic(
            None,
            "auth.revocations",
            None,
            wait=wait,
            role="sidecar",
            configs=True,
            clock=self.clock,
            sleep=self.clock.advance,
            **{"everywhere": False, **kwargs},
        )


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Callable[[Rounds], Brokers]:
    def make(rounds: Rounds) -> Brokers:
        brokers = Brokers(rounds)
        monkeypatch.setattr(_topic, "_ask_brokers", brokers.ask)
        return brokers

    return make


def test_a_topic_no_broker_lists_is_not_found_after_the_appear_timeout_not_the_wait(
    script: Callable[[Rounds], Brokers],
) -> None:
    brokers = script(lambda _: [unknown(1), unknown(2), unknown(3)])

    with pytest.raises(TopicNotFoundError, match=r"does not exist .*jwt-revocation topic ensure"):
        brokers.wait(wait=30.0)
    assert brokers.clock.now == pytest.approx(TOPIC_APPEAR_TIMEOUT, abs=0.11)


def test_a_topic_that_appears_in_time_is_found(script: Callable[[Rounds], Brokers]) -> None:
    brokers = script(lambda n: [listed(1), unknown(2)] if n >= 5 else [unknown(1), unknown(2)])

    assert [view.node for view in brokers.wait()] == [1]
    assert brokers.asked == 6


def test_one_broker_is_enough_for_a_check_and_every_one_for_ensure(
    script: Callable[[Rounds], Brokers],
) -> None:
    brokers = script(lambda n: [listed(1), unknown(2), listed(3) if n >= 3 else unknown(3)])
    assert [view.node for view in brokers.wait()] == [1]
    assert brokers.asked == 1

    brokers = script(lambda n: [listed(1), unknown(2) if n < 4 else listed(2)])
    assert [view.node for view in brokers.wait(everywhere=True)] == [1, 2]
    assert brokers.asked == 5


def test_a_broker_that_never_lists_it_fails_ensure_at_the_end_of_its_wait(
    script: Callable[[Rounds], Brokers],
) -> None:
    brokers = script(lambda _: [listed(1), unknown(2), unknown(3)])

    with pytest.raises(TopicNotFoundError, match=r"listed by broker\(s\) 1 but not by 2, 3"):
        brokers.wait(wait=5.0, everywhere=True)
    assert brokers.clock.now == pytest.approx(5.0, abs=0.11)


def test_ensure_waits_until_every_broker_describes_the_settings_it_set(
    script: Callable[[Rounds], Brokers],
) -> None:
    default = {"retention.ms": "90000000", "min.insync.replicas": "1"}
    brokers = script(lambda n: [listed(1, SET), listed(2, SET if n >= 2 else default)])
    settled = partial(_BrokerView.has, replicas=3, expected=SET)

    assert len(brokers.wait(everywhere=True, settled=settled)) == 2
    assert brokers.asked == 3

    brokers = script(lambda _: [listed(1, SET), listed(2, default)])
    with pytest.raises(TopicError, match=r"broker\(s\) 2 do not describe"):
        brokers.wait(wait=1.0, everywhere=True, settled=settled)


def test_a_principal_that_may_not_describe_the_topic_is_told_so_at_once(
    script: Callable[[Rounds], Brokers],
) -> None:
    brokers = script(lambda _: [_BrokerView(1, 29)])

    with pytest.raises(KafkaAccessError, match="may not DESCRIBE topic") as refused:
        brokers.wait()
    assert refused.value.reason == "not_authorized"
    assert brokers.asked == 1


def test_a_broker_answer_becomes_its_view() -> None:
    metadata = {"error_code": 0, "partitions": [PARTITION]}
    configs = [{"name": "min.insync.replicas", "value": "2"}]

    assert _view(1, metadata, None) == listed(1)
    assert _view(1, metadata, {"results": [{"error_code": 0, "configs": configs}]}).configs == {
        "min.insync.replicas": "2"
    }
    assert _view(1, metadata, {"results": [{"error_code": 29, "configs": []}]}).configs_denied
    # Not caught up yet: the topic, or its configuration, or a leader, unknown to this broker.
    assert _view(1, metadata, {"results": [{"error_code": 3, "configs": []}]}).configs is None
    assert not _view(1, {"error_code": 3, "partitions": []}, None).listed
    leaderless = {**PARTITION, "leader_id": -1}
    assert not _view(1, {"error_code": 0, "partitions": [leaderless]}, None).listed
