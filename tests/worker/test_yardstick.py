"""The yardstick itself (bench/yardstick.py): a plain deadline-first worker, fluid and exact."""

from __future__ import annotations

import pytest

from bench.yardstick import Worker, good_share, poisson_audio, simulate


def test_a_lone_stream_hears_its_first_chunk_after_its_cost_and_never_waits_again() -> None:
    worker = Worker(capacity=8.0, overhead_s=0.02, first_audio_s=1.5)
    (heard,) = simulate(worker, [(3.0, 60.0)])
    assert heard.first_audio_s == pytest.approx(worker.cost(1.5))
    assert heard.worst_underrun_s == 0.0
    assert good_share([heard], 1.0) == 1.0


def test_a_worker_slower_than_real_time_makes_its_listener_wait() -> None:
    (heard,) = simulate(Worker(capacity=0.8), [(0.0, 30.0)])
    assert heard.worst_underrun_s > 0.1
    assert good_share([heard], 10.0) == 0.0


def test_more_streams_than_the_worker_feeds_stutter_and_fewer_do_not() -> None:
    worker = Worker(capacity=8.0)
    assert all(h.worst_underrun_s == 0.0 for h in simulate(worker, [(0.1 * i, 30.0) for i in range(3)]))
    assert any(h.worst_underrun_s > 0.1 for h in simulate(worker, [(0.1 * i, 30.0) for i in range(12)]))


def test_arrivals_are_seeded() -> None:
    assert poisson_audio(0.5, 100.0, [15.0], 3) == poisson_audio(0.5, 100.0, [15.0], 3)
    assert poisson_audio(0.5, 100.0, [15.0], 3) != poisson_audio(0.5, 100.0, [15.0], 4)
