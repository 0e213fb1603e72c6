"""The stream board, the counters, and both shared across processes through the manager."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tts_api.front.metrics import render
from tts_api.ipc import streams as board_module
from tts_api.ipc.counters import Counters
from tts_api.ipc.frames import FrameError, Ticket
from tts_api.ipc.manager import Shared, shared_state
from tts_api.ipc.streams import StreamBoard
from tts_api.ipc.workers import WorkerProcess, start_mark


def test_a_cancel_reaches_an_open_request_and_closing_forgets_it() -> None:
    board = StreamBoard()
    assert board.open("k", limit=10) == "admitted"
    assert board.poll(["k"])["k"].status == "open"
    assert board.cancel("k")
    state = board.poll(["k"])["k"]
    assert state.status == "cancelled" and state.reason == "client" and state.stopped
    board.close("k")
    assert board.size() == 0


def test_a_request_missing_from_the_board_reads_as_gone_not_as_running() -> None:
    """A worker must stop a job whose entry the front already closed, not synthesize for nobody."""
    board = StreamBoard()
    state = board.poll(["never-opened"])["never-opened"]
    assert state.status == "gone" and state.stopped


def test_a_cancel_after_the_job_ended_leaves_nothing_behind() -> None:
    board = StreamBoard()
    board.open("k", limit=10)
    board.close("k")  # the worker finished
    assert not board.cancel("k")  # the client left a moment later
    assert board.size() == 0


def test_admission_stops_at_the_limit_and_while_draining() -> None:
    board = StreamBoard()
    assert board.open("a", limit=2) == board.open("b", limit=2) == "admitted"
    assert board.open("c", limit=2) == "full"
    board.close("a")
    assert board.open("c", limit=2) == "admitted"
    board.drain()
    board.close("b")
    assert board.open("d", limit=10) == "draining" and board.draining()


def test_shutdown_cancels_everything_in_flight_with_its_reason() -> None:
    board = StreamBoard()
    board.open("a", limit=10)
    board.open("b", limit=10)
    board.cancel("a")  # the client of a left first: that reason stays
    assert board.cancel_all("shutdown") == 2
    states = board.poll(["a", "b"])
    assert (states["a"].reason, states["b"].reason) == ("client", "shutdown")


def test_the_front_reports_how_much_audio_the_client_has_taken() -> None:
    board = StreamBoard()
    board.open("k", limit=10)
    board.delivered("k", 3.5)
    board.delivered("k", 2.0)  # a late report never moves it back
    assert board.poll(["k"])["k"].delivered_s == 3.5


def test_a_stream_of_many_hours_keeps_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """An audiobook may stream for hours: no entry is closed for its age (a slow reader is cut by its
    HTTP process instead, front/readrate.py; a dead worker's entry by `reap`)."""
    board = StreamBoard()
    board.open("audiobook", limit=10)
    later = time.monotonic() + 7 * 3600
    monkeypatch.setattr(board_module.time, "monotonic", lambda: later)
    assert board.open("next", limit=10) == "admitted"
    assert board.size() == 2 and board.poll(["audiobook"])["audiobook"].status == "open"


def test_a_live_streams_text_reaches_its_worker_once_in_order_and_stops_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board = StreamBoard()
    clock = iter([1.0, 2.0, 3.0])  # open, the first feed of each take
    monkeypatch.setattr(board_module.time, "monotonic", lambda: next(clock))
    assert board.open("k", limit=10) == "admitted"
    assert board.feed("k", "Hello ") and board.feed("k", "there", flush=True)
    assert board.poll(["k"])["k"].text == ""  # a poll that does not take leaves the text
    state = board.poll(["k"], take=["k"])["k"]
    assert (state.text, state.flush, state.ended, state.fed_at) == ("Hello there", True, False, 2.0)
    assert board.poll(["k"], take=["k"])["k"].text == ""  # taken once
    assert board.feed("k", " Bye.", end=True)
    state = board.poll(["k"], take=["k"])["k"]
    assert (state.text, state.flush, state.ended, state.fed_at) == (" Bye.", True, True, 3.0)
    assert not board.feed("k", "more"), "an ended stream takes no text"
    board.cancel("k")
    assert not board.feed("k", "more") and not board.feed("gone", "text")


def test_counters_render_as_prometheus_text() -> None:
    counters = Counters()
    counters.add("tts_chunks_synthesized_total", 3)
    counters.add("tts_requests_cancelled_total", stage="queued")
    counters.observe("tts_delivery_seconds", [0.002, 0.02, 100.0])
    text = render(counters.snapshot(), {("tts_cancel_board_entries", ()): 2}).decode()
    assert "tts_chunks_synthesized_total 3.0" in text
    assert 'tts_requests_cancelled_total{stage="queued"} 1.0' in text
    assert "tts_cancel_board_entries 2.0" in text
    assert 'tts_delivery_seconds_bucket{le="0.0025"} 1.0' in text
    assert 'tts_delivery_seconds_bucket{le="30.0"} 2.0' in text
    assert 'tts_delivery_seconds_bucket{le="+Inf"} 3.0' in text
    assert "tts_delivery_seconds_count 3.0" in text
    assert "tts_requests_completed_total 0.0" in text  # every metric is present from the start


def _worker(shared: Shared, key: str) -> None:
    shared.counters.add("tts_chunks_synthesized_total", 2)
    shared.board.close(key)


def test_the_shared_objects_work_from_a_spawned_process() -> None:
    with shared_state() as state:
        shared = state.shared
        assert shared.board.open("job", 5) == "admitted"
        assert shared.board.cancel("job")
        child = multiprocessing.get_context("spawn").Process(target=_worker, args=(shared, "job"))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert shared.board.size() == 0
        assert shared.counters.snapshot().values[("tts_chunks_synthesized_total", ())] == 2


def test_frames_round_trip_and_refuse_strangers() -> None:
    ticket, stranger = Ticket.issue(), Ticket.issue()
    frame = ticket.parse(ticket.audio_frame(b"\x00\x01", audio_end_s=1.25))
    assert (frame.kind, frame.audio, frame.audio_end_s) == ("audio", b"\x00\x01", 1.25) and frame.sent_at > 0
    assert ticket.parse(ticket.start_frame(WorkerProcess(123, 4.5))).worker() == WorkerProcess(123, 4.5)
    assert ticket.parse(ticket.end_frame(audio_seconds=1.5)).data() == {"audio_seconds": 1.5}
    for item in (stranger.audio_frame(b"x", audio_end_s=0.1), b"", b"RIFF...."):
        with pytest.raises(FrameError):
            ticket.parse(item)


def test_counters_take_labels_as_keywords_and_refuse_unknown_names() -> None:
    counters = Counters()
    counters.add("tts_requests_rejected_total", status=400)
    counters.add("tts_requests_rejected_total", 2, status=400)
    counters.add("tts_requests_rejected_total", status=503)
    counters.set("tts_open_encoders", 4)
    values = counters.snapshot().values
    assert values[("tts_requests_rejected_total", (("status", "400"),))] == 3
    assert values[("tts_requests_rejected_total", (("status", "503"),))] == 1
    assert values[("tts_open_encoders", ())] == 4
    with pytest.raises(KeyError, match="unknown metric"):
        counters.add("tts_no_such_thing_total")
    text = render(counters.snapshot(), {}).decode()
    assert 'tts_requests_rejected_total{status="400"} 3.0' in text


def test_the_manager_ignores_stop_signals_meant_for_main() -> None:
    """A signal to the whole process group (systemd, `kill -- -PGID`, Ctrl-C) reaches the manager too;
    main drains with it, so it must keep answering until main shuts it down."""
    with shared_state() as state:
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(state.process.pid, sig)
        time.sleep(0.5)  # a signal is handled at once; give a dying process time to go
        assert state.process.is_alive()
        assert state.shared.board.open("after", 5) == "admitted"


def test_the_board_closes_the_entries_of_a_worker_that_died() -> None:
    """After a client left, nobody watches its worker; if that worker dies, the board frees the place."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    board = StreamBoard()
    for key in ("left", "running", "queued"):
        board.open(key, limit=10)
    board.claim("left", WorkerProcess(dead.pid, 1.0))
    board.cancel("left")
    board.claim("running", WorkerProcess.current())
    assert board.reap() == 1
    assert board.poll(["left"])["left"].status == "gone"
    assert board.size() == 2  # a live worker's entry and one no worker has taken yet stay
    board.claim("never-opened", WorkerProcess(dead.pid, 1.0))  # a late claim opens nothing
    assert board.size() == 2


def test_a_wall_clock_step_leaves_a_live_worker_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """An NTP step or a VM resume moves the boot time that psutil adds to a process's start ticks; a worker
    must not read as dead then (its requests would fail with worker_lost, its entries be reaped)."""
    me, sibling = WorkerProcess.current(), subprocess.Popen([sys.executable, "-c", "input()"], stdin=-1)
    try:
        other = WorkerProcess(sibling.pid, start_mark(sibling.pid) or 0.0)
        board = StreamBoard()
        board.open("playing", limit=10)
        board.claim("playing", other)
        for step_s in (3600.0, -3600.0):
            booted = psutil.boot_time() + step_s
            monkeypatch.setattr(psutil._pslinux, "boot_time", lambda booted=booted: booted)
            monkeypatch.setattr(psutil, "boot_time", lambda booted=booted: booted)
            assert me.alive() and other.alive()
            assert board.reap() == 0 and board.size() == 1
    finally:
        sibling.kill()
        sibling.wait()
    assert not other.alive()  # and a process that is gone still reads as gone


def test_a_request_that_would_wait_longer_than_its_bound_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The board measures how fast waiting requests start (their first audio) and answers `behind` to a
    newcomer the pace would keep waiting past its bound, while requests wait; the others are admitted."""
    now = [0.0]
    monkeypatch.setattr(board_module.time, "monotonic", lambda: now[0])
    board = StreamBoard()
    keys = [f"r{n}" for n in range(10)]
    for key in keys:
        assert board.open(key, limit=20, max_wait_s=60.0) == "admitted"
    for key in keys[:8]:  # they start 3 s apart: a backlog
        now[0] += 3.0
        board.delivered(key, 0.5)
        board.delivered(key, 3.0)  # later audio is no new start
    assert board.wait_estimate() == pytest.approx(9.0)  # two wait: a newcomer is third in line
    assert board.open("e", limit=20, max_wait_s=5.0) == "behind"
    assert board.open("e", limit=20, max_wait_s=10.0) == "admitted"  # a looser bound
    assert board.open("live", limit=20) == "admitted"  # no bound (a voice agent's context): not counted
    assert board.wait_estimate() == pytest.approx(12.0)
    for key in [*keys[8:], "e"]:  # requests that left, or timed out, wait no more
        board.cancel(key)
    assert board.open("f", limit=20, max_wait_s=5.0) == "admitted"  # nobody waits: never refused early


def test_a_burst_is_not_refused_for_the_time_its_first_request_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """64 requests at once on a batching worker with a 30-s bound: the first is heard after 0.5 s, alone;
    a request that comes then, behind 63, is admitted (they all start in the next step)."""
    now = [0.0]
    monkeypatch.setattr(board_module.time, "monotonic", lambda: now[0])
    board = StreamBoard()
    for n in range(64):
        assert board.open(f"r{n}", limit=128, max_wait_s=30.0) == "admitted"
    now[0] = 0.5
    board.delivered("r0", 0.3)
    now[0] = 0.6
    assert board.open("late", limit=128, max_wait_s=30.0) == "admitted"


def test_an_idle_server_never_refuses_early_whatever_pace_it_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(board_module.time, "monotonic", lambda: now[0])
    board = StreamBoard()
    keys = [f"slow{n}" for n in range(10)]
    for key in keys:
        board.open(key, limit=20, max_wait_s=1.0)
    for key in keys:
        now[0] += 50.0
        board.delivered(key, 1.0)  # each waited 50 s more for its first audio
        board.close(key)
    assert board.open("next", limit=20, max_wait_s=1.0) == "admitted"
