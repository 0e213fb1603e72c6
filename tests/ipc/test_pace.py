"""The start pace: how long a newcomer would wait for its first audio, from the starts the board saw."""

from __future__ import annotations

import pytest

from tts_api.ipc.pace import MIN_STARTS, StartPace


def test_nothing_is_estimated_before_a_backlog_has_shown_enough_starts() -> None:
    pace = StartPace()
    pace.started(1.0)  # no queue formed yet: not counted
    assert pace.wait_s(2.0, 5) is None
    pace.backlog(2.0)
    for n in range(MIN_STARTS - 1):
        pace.started(3.0 + n)
    assert pace.wait_s(20.0, 5) is None
    pace.started(20.0)
    assert pace.wait_s(20.0, 5) is not None


def test_a_backlog_measures_how_fast_the_queue_moves_not_each_request_s_whole_wait() -> None:
    """Ten requests queued at 0 that start one every 3 s: the queue moves a start per 3 s, though the last
    one waited 30 s; a newcomer behind 4 waiting ones would wait about 15 s."""
    pace = StartPace()
    pace.backlog(0.0)
    for n in range(1, 11):
        pace.started(3.0 * n)
    assert pace.wait_s(30.0, 4) == pytest.approx(15.0)


def test_the_first_start_of_a_batched_burst_does_not_make_the_rest_look_slow() -> None:
    """64 requests at once on a batching worker: the first is heard alone after 0.5 s, the other 63 in the
    next step at 0.9 s. Between the two steps nothing is estimated (one start tells nothing of the rest),
    and after them a newcomer behind the whole burst would wait about a second, not 64 × 0.5 s."""
    pace = StartPace()
    pace.backlog(0.0)
    pace.started(0.5)
    assert pace.wait_s(0.6, 63) is None
    for _ in range(63):
        pace.started(0.9)
    assert pace.wait_s(0.9, 64) == pytest.approx(65 * 0.9 / 64)


def test_the_pace_follows_a_change_of_load_within_its_window() -> None:
    pace = StartPace()
    pace.backlog(0.0)
    for n in range(1, 41):
        pace.started(5.0 * n)  # slow: a start every 5 s, until 200 s
    slow = pace.wait_s(202.5, 0)
    for n in range(1, 151):
        pace.started(200.0 + 0.5 * n)  # then quick: two a second
    assert slow == pytest.approx(5.0)
    assert pace.wait_s(275.25, 0) == pytest.approx(0.5)  # a window later, only the quick starts count


def test_a_new_backlog_forgets_the_starts_of_the_last_one() -> None:
    pace = StartPace()
    pace.backlog(0.0)
    for n in range(1, 11):
        pace.started(float(n))
    assert pace.wait_s(10.0, 0) == pytest.approx(1.0)
    pace.backlog(100.0)
    assert pace.wait_s(100.0, 0) is None
