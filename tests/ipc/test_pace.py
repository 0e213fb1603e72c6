"""The start pace: how long a newcomer would wait for its first audio, from the starts the board saw."""

from __future__ import annotations

import pytest

from tts_api.ipc.pace import StartPace


def test_nothing_is_estimated_before_a_start_was_measured() -> None:
    assert StartPace().wait_s(5) is None


def test_a_server_that_starts_requests_as_they_come_measures_its_first_audio_latency() -> None:
    pace = StartPace()
    for opened in (0.0, 10.0, 20.0):
        pace.started(opened + 0.4, opened)
    assert pace.wait_s(0) == pytest.approx(0.4)
    assert pace.wait_s(2) == pytest.approx(1.2)


def test_a_backlog_measures_the_interval_between_starts_not_each_request_s_whole_wait() -> None:
    """Ten requests queued at 0 that start one every 3 s: the pace is 3 s a start, though the last one
    waited 30 s; a newcomer behind 4 waiting ones would wait about 15 s."""
    pace = StartPace()
    for n in range(1, 11):
        pace.started(3.0 * n, 0.0)
    assert pace.wait_s(4) == pytest.approx(15.0)


def test_the_pace_follows_a_change_of_load_within_a_dozen_starts() -> None:
    pace = StartPace()
    for n in range(1, 11):
        pace.started(10.0 * n, 0.0)  # slow: a start every 10 s
    slow = pace.wait_s(0)
    for n in range(1, 13):
        pace.started(100.0 + n, 100.0 + n - 0.5)  # then quick again: 0.5 s each
    assert slow == pytest.approx(10.0)
    assert pace.wait_s(0) < 1.0  # type: ignore[operator]
