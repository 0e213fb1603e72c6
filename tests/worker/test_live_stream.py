"""A live stream (a voice agent's context) in the worker, on a fake clock: text fed while it plays, the
scheduler's view of it, idle frames, the end, bounds; then through the loop with a real board.

The clock here is the `now` the loop would pass; audio is sent as the loop sends it (`deliver`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litserve.loops.base import _SENTINEL_VALUE

from tests.worker.test_loop import SENTENCE, _runtime, _Worker, _worker
from tts_api.errors import InputTooLong
from tts_api.ipc.frames import TICKET_KEY, Ticket
from tts_api.schemas import RequestContext, parse_speech_request
from tts_api.settings import EmulatedSpec
from tts_api.synth.costs import CostModel
from tts_api.synth.emulated import EmulatedEngine
from tts_api.voices import VoiceCatalogue
from tts_api.worker.loop import SpeechLoop
from tts_api.worker.scheduler import Scheduler, StreamView
from tts_api.worker.stream import Step, Stream

CONTEXT = RequestContext(VoiceCatalogue(["af_heart"]), max_input_chars=2_000, languages=frozenset("a"))
FAST = EmulatedEngine(EmulatedSpec(1000.0, 0.0))  # synthesis that takes no time: the clock is ours


def live_stream(now: float = 0.0, *, max_live_chars: int = 2_000, **bounds: float) -> Stream:
    speech = parse_speech_request(
        {"input": "", "voice": "af_heart", "response_format": "pcm"}, CONTEXT, live=True
    )
    return Stream(
        "uid",
        0,
        Ticket.issue(live=True),
        speech,
        FAST,
        arrived_s=now,
        max_live_chars=max_live_chars,
        **bounds,
    )


def deliver(stream: Stream, step: Step, now: float) -> None:
    """What the loop does with a step's audio (worker/loop.py `_deliver`); the client takes it at once."""
    view = stream.view
    if step.audio_s > 0:
        view.first_audio_s = view.first_audio_s if view.first_audio_s is not None else now
        view.sent_audio_s += step.audio_s
        view.delivered_audio_s = view.sent_audio_s


def kinds(stream: Stream, step: Step) -> list[str]:
    return [stream.ticket.parse(frame).kind for frame in step.frames]


def speak_all(stream: Stream, now: float) -> list[str]:
    """Step until it waits for text or ends; the kinds of the frames sent."""
    sent: list[str] = []
    while True:
        step = stream.step(400)
        deliver(stream, step, now)
        sent += kinds(stream, step)
        if step.done or stream.waiting:
            return sent


def test_a_stream_with_no_sure_text_asks_for_no_work_and_the_scheduler_passes_it_by() -> None:
    stream = live_stream()
    assert stream.view.finished  # nothing to say yet: the scheduler has nothing to run
    stream.feed("Hello there", flush=False, ended=False, now=0.1)
    assert speak_all(stream, 0.1) == []  # "there" may go on
    other = StreamView("other", 0.0, remaining_chars=300, admitted_s=0.0)
    pick = Scheduler(CostModel(compute_s_per_char=0.001, overhead_s=0.01)).pick(0.2, [stream.view, other])
    assert pick is not None and pick.key == "other"
    stream.close()


def test_a_flush_speaks_the_buffer_then_one_idle_frame_and_the_end_ends_it() -> None:
    stream = live_stream()
    stream.feed("Hello there", flush=True, ended=False, now=0.0)
    assert speak_all(stream, 0.0) == ["words", "audio", "idle"]  # words first: the socket sends them along
    assert stream.step(400).frames == []  # idle is said once per text given
    stream.feed(" and goodbye.", flush=False, ended=True, now=0.5)
    sent = speak_all(stream, 0.5)
    assert sent[-1] == "end" and "audio" in sent
    stream.close()


def test_text_that_comes_while_the_player_plays_keeps_its_deadlines() -> None:
    stream = live_stream()
    stream.feed("The first sentence is here.", flush=True, ended=False, now=0.0)
    speak_all(stream, 0.0)
    first, sent = stream.view.first_audio_s, stream.view.sent_audio_s
    assert sent > 0.5
    stream.feed(" And the second one.", flush=True, ended=False, now=sent / 2)  # still playing
    assert (stream.view.first_audio_s, stream.view.arrived_s) == (first, 0.0)
    assert stream.view.played_out_s() == pytest.approx(first + sent)  # one player, continuous
    stream.close()


def test_text_that_comes_after_the_player_ran_dry_is_a_newcomers_first_chunk() -> None:
    stream = live_stream()
    stream.feed("The first sentence is here.", flush=True, ended=False, now=0.0)
    speak_all(stream, 0.0)
    dry_at = stream.view.played_out_s()
    assert dry_at is not None
    later = dry_at + 5.0
    stream.feed(
        " And after a long silence, a much longer second sentence.", flush=True, ended=False, now=later
    )
    fresh = StreamView("fresh", later, remaining_chars=stream.view.remaining_chars, admitted_s=later)
    assert (stream.view.first_audio_s, stream.view.arrived_s, stream.view.admitted_s) == (None, later, later)
    policy = Scheduler(CostModel(compute_s_per_char=0.001, overhead_s=0.01))
    as_live, as_fresh = policy.pick(later, [stream.view]), policy.pick(later, [fresh])
    assert as_live is not None and as_fresh is not None and as_live.max_chars == as_fresh.max_chars
    step = stream.step(policy.first_chunk_chars)
    assert 0 < step.chars <= policy.first_chunk_chars  # a few words first, as for a newcomer
    deliver(stream, step, later)
    assert stream.view.buffered_s(later) == pytest.approx(step.audio_s)  # its new player starts now
    stream.close()


def test_text_that_came_before_the_player_ran_dry_keeps_its_deadlines_when_taken_late() -> None:
    # The worker was busy with another stream's chunk while the player ran out: the text was there in time,
    # so the stream is late, not a newcomer (whose small chunks would keep a shared worker behind).
    stream = live_stream()
    stream.feed("The first sentence is here.", flush=True, ended=False, now=0.0)
    speak_all(stream, 0.0)
    first = stream.view.first_audio_s
    dry_at = stream.view.played_out_s()
    assert dry_at is not None
    stream.feed(" And the second one.", flush=True, ended=False, now=dry_at + 1.0, fed_at=dry_at - 0.1)
    assert (stream.view.first_audio_s, stream.view.arrived_s) == (first, 0.0)
    assert stream.view.buffered_s(dry_at + 1.0) == 0.0  # late: due at once
    stream.feed(" More.", flush=True, ended=False, now=dry_at + 2.0, fed_at=dry_at + 1.5)
    assert stream.view.first_audio_s == first  # it still had text to say when this came
    stream.close()


def test_the_expected_text_counts_as_to_come_from_the_first_word_until_it_came_or_it_ended() -> None:
    stream = live_stream()
    stream.expect(100)
    stream.feed(" ", flush=False, ended=False, now=0.0)
    assert stream.view.to_come_chars == 0  # not a word yet: it holds no place
    stream.feed("x" * 39 + " ", flush=False, ended=False, now=0.0)
    assert stream.view.to_come_chars == 59
    stream.feed("", flush=False, ended=True, now=0.1)
    assert stream.view.to_come_chars == 0
    stream.close()


def test_text_past_the_streams_bound_is_refused() -> None:
    stream = live_stream(max_live_chars=30)
    stream.feed("x" * 30, flush=False, ended=False, now=0.0)
    with pytest.raises(InputTooLong):
        stream.feed("y", flush=False, ended=False, now=0.0)
    stream.close()


def test_pauses_and_audio_past_their_bounds_fail_the_stream() -> None:
    stream = live_stream(max_pause_s=1.5)
    stream.feed("Hi. [pause:1s] there. [pause:1s] again.", flush=True, ended=False, now=0.0)
    with pytest.raises(InputTooLong, match="pause"):
        speak_all(stream, 0.0)
    stream.close()
    stream = live_stream(max_audio_s=1.0)
    stream.feed(
        "A sentence that takes longer than one second to say out loud.", flush=True, ended=False, now=0.0
    )
    with pytest.raises(InputTooLong, match="minutes"):
        speak_all(stream, 0.0)
    stream.close()


# --- Through the loop, with a board ------------------------------------------------------------------


@pytest.fixture
def worker() -> Iterator[_Worker]:
    harness = _worker(_runtime(20.0))
    thread = threading.Thread(
        target=SpeechLoop().serve, args=(harness.runtime, harness.queue, harness.transport)
    )
    thread.start()
    yield harness
    harness.queue.put(_SENTINEL_VALUE)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert harness.board.size() == 0, "a board entry leaked"
    for uid in harness.tickets:
        assert harness.transport.finished(uid), f"{uid} never got its FINISH"


def submit_live(worker: _Worker, uid: str) -> Ticket:
    ticket = Ticket.issue(live=True)
    assert worker.board.open(ticket.key, 100) == "admitted"
    worker.tickets[uid] = ticket
    body: dict[str, Any] = {
        "input": "",
        "voice": "af_heart",
        "response_format": "pcm",
        TICKET_KEY: ticket.to_dict(),
    }
    worker.queue.put((0, uid, time.monotonic(), body))
    return ticket


def test_a_live_stream_takes_its_text_from_the_board_and_ends_when_the_client_ends_it(
    worker: _Worker,
) -> None:
    ticket = submit_live(worker, "live")
    for piece in SENTENCE.split(" "):
        assert worker.board.feed(ticket.key, piece + " ")
    assert worker.board.feed(ticket.key, "", flush=True)
    worker.transport.wait_for(lambda: "idle" in worker.kinds("live"))
    worker.submit("plain", {"input": "Meanwhile a plain request.", "response_format": "pcm"})
    worker.transport.wait_for(lambda: worker.transport.finished("plain"))  # not held up by the live one
    assert worker.board.feed(ticket.key, "Goodbye now.", end=True)
    worker.transport.wait_for(lambda: worker.transport.finished("live"))
    frames = worker.transport.frames("live", ticket)
    assert [f.kind for f in frames].count("idle") == 1 and frames[-1].kind == "end"
    words = [w["word"] for f in frames if f.kind == "words" for w in f.data()]
    assert [w.strip(".") for w in words] == [w.strip(".") for w in (SENTENCE + "Goodbye now.").split()]
    assert not worker.board.feed(ticket.key, "more"), "an ended stream takes no text"


def test_a_live_stream_cancelled_while_it_waits_for_text_ends_and_is_counted(worker: _Worker) -> None:
    ticket = submit_live(worker, "live")
    worker.board.feed(ticket.key, "Hello", flush=True)
    worker.transport.wait_for(lambda: "idle" in worker.kinds("live"))
    worker.board.cancel(ticket.key, "client")
    worker.transport.wait_for(lambda: worker.transport.finished("live"))
    assert "end" not in worker.kinds("live")
    assert worker.counter("tts_requests_cancelled_total", stage="streaming") == 1


def test_a_live_stream_fed_past_its_bound_fails_with_a_clear_error(worker: _Worker) -> None:
    ticket = submit_live(worker, "live")
    worker.board.feed(ticket.key, "word " * 5_000)  # past the runtime's 20,000 characters
    worker.transport.wait_for(lambda: worker.transport.finished("live"))
    (error,) = [f for f in worker.transport.frames("live", ticket) if f.kind == "error"]
    assert (error.data()["status"], error.data()["error"]["code"]) == (413, "input_too_long")
    assert worker.counter("tts_requests_failed_total") == 1


def test_a_bad_pause_tag_in_live_text_fails_the_stream_with_a_400(worker: _Worker) -> None:
    ticket = submit_live(worker, "live")
    worker.board.feed(ticket.key, "Wait [pause:99h] here.", flush=True)
    worker.transport.wait_for(lambda: worker.transport.finished("live"))
    (error,) = [f for f in worker.transport.frames("live", ticket) if f.kind == "error"]
    assert (error.data()["status"], error.data()["error"]["code"]) == (400, "invalid_pause_tag")


def test_a_live_stream_speaks_the_words_that_came_while_it_waited_in_the_first_step_after_its_admission(
    worker: _Worker,
) -> None:
    """Its client's words wait on the board until the loop admits the context: taken at once, they are
    the next step's (else another stream's chunk goes first, and the newcomer waits that long for nothing:
    ~0.6 s of a second voice agent's first audio on a 2-vCPU machine)."""
    runtime = worker.runtime
    stepped: list[str] = []  # the streams stepped, in order
    opened: list[int] = []  # how many steps there had been when each stream was admitted
    step, open_stream = runtime.step, runtime.open_stream

    def step_and_note(stream: Stream, max_chars: int) -> Step:
        stepped.append(stream.key)
        return step(stream, max_chars)

    def open_and_note(*args: Any) -> Stream:
        opened.append(len(stepped))
        return open_stream(*args)

    runtime.step, runtime.open_stream = step_and_note, open_and_note  # type: ignore[method-assign]
    worker.submit("plain", {"input": SENTENCE * 20, "response_format": "pcm"})
    worker.transport.wait_for(lambda: "audio" in worker.kinds("plain"))
    ticket = Ticket.issue(live=True)
    assert worker.board.open(ticket.key, 100) == "admitted"
    assert worker.board.feed(ticket.key, SENTENCE, flush=True)
    worker.tickets["live"] = ticket
    body = {"input": "", "voice": "af_heart", "response_format": "pcm", TICKET_KEY: ticket.to_dict()}
    worker.queue.put((0, "live", time.monotonic(), body))
    worker.transport.wait_for(lambda: "audio" in worker.kinds("live"))
    assert len(opened) == 2 and stepped[opened[1]] == ticket.key
    worker.board.feed(ticket.key, "", end=True)
    worker.board.cancel(worker.tickets["plain"].key, "client")
    worker.transport.wait_for(
        lambda: worker.transport.finished("live") and worker.transport.finished("plain")
    )
