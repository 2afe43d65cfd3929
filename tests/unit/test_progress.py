"""ReplayProgress: positions, targets and caught-up, with no broker."""

from __future__ import annotations

from jwt_revocation.consumer._progress import PartitionStats, ReplayProgress


def test_nothing_known_is_caught_up_but_says_so() -> None:
    progress = ReplayProgress()

    assert progress.caught_up()
    assert progress.describe() == "end offsets not known yet"
    assert progress.replayed() == (0, 0)


def test_caught_up_once_every_partition_reaches_its_start_time_end() -> None:
    progress = ReplayProgress()
    progress.start_at(0, 10, 20)
    progress.start_at(1, 5, 5)

    assert not progress.caught_up()
    assert progress.behind() == {0: 10}
    assert progress.describe() == "behind the start-time end offsets by {0: 10}"
    progress.advance(0, 15)
    assert progress.replayed() == (5, 10)
    progress.advance(0, 20)
    assert progress.caught_up()
    assert progress.describe() == "caught up"
    assert progress.replayed() == (10, 10)


def test_later_end_offsets_do_not_move_the_target() -> None:
    progress = ReplayProgress()
    progress.start_at(0, 0, 3)
    progress.advance(0, 3)
    progress.saw_end_offsets({0: 50})

    assert progress.caught_up()
    assert progress.partitions() == {0: PartitionStats(position=3, end_offset=50, lag=47)}


def test_a_resumed_partition_keeps_its_first_target() -> None:
    progress = ReplayProgress()
    progress.start_at(0, 0, 3)
    progress.start_at(0, 2, 9)  # a restart seeks again

    assert progress.targets == {0: 3}
    assert progress.position(0) == 2


def test_applied_through_is_strictly_below_the_position() -> None:
    progress = ReplayProgress()
    progress.start_at(0, 0, 10)
    progress.advance(0, 4)

    assert progress.applied_through(0, 3)
    assert not progress.applied_through(0, 4)
    assert not progress.applied_through(1, 0)
    assert progress.knows(0)
    assert not progress.knows(1)
