"""The worker loop through its public interface: LitServe's queue in, LitServe's transport out, a real
WorkerRuntime on the emulated engine (no model) with an in-process board and counters.

Every request it takes ends with a FINISH and a closed board entry, whatever happens to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from queue import Queue
from typing import Any

import pytest
from litserve.loops.base import _SENTINEL_VALUE
from litserve.utils import LitAPIStatus

from tts_api.ipc.counters import Counters
from tts_api.ipc.frames import TICKET_KEY, Frame, Ticket
from tts_api.ipc.manager import Shared
from tts_api.ipc.streams import StreamBoard
from tts_api.schemas import RequestContext
from tts_api.settings import EmulatedSpec
from tts_api.synth.emulated import EmulatedEngine
from tts_api.voices import VoiceCatalogue
from tts_api.worker.loop import SpeechLoop
from tts_api.worker.runtime import WorkerRuntime
from tts_api.worker.scheduler import TYPICAL_CHARS_PER_AUDIO_S, CostModel, Scheduler

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank. "


class _BrokenCatalogue(VoiceCatalogue):
    def resolve(self, expression: str) -> Any:
        raise RuntimeError("the voice table is corrupt")  # not a TTSError: a bug, not bad input


@dataclass
class _Transport:
    """LitServe's transport as the loop sees it: records what goes to each request, in order."""

    sent: list[tuple[str, Any, LitAPIStatus]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def send(self, item: Any, consumer_id: int) -> None:
        uid, (data, status, _kind, _worker) = item
        with self.changed:
            self.sent.append((uid, data, status))
            self.changed.notify_all()

    def frames(self, uid: str, ticket: Ticket) -> list[Frame]:
        with self.changed:
            return [ticket.parse(d) for u, d, s in self.sent if u == uid and s == LitAPIStatus.OK]

    def finished(self, uid: str) -> bool:
        with self.changed:
            return any(u == uid and s == LitAPIStatus.FINISH_STREAMING for u, _, s in self.sent)

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout_s), "the loop did not get there in time"


@dataclass
class _Worker:
    runtime: WorkerRuntime
    transport: _Transport
    queue: Queue[Any]
    tickets: dict[str, Ticket] = field(default_factory=dict)

    @property
    def board(self) -> StreamBoard:
        return self.runtime.board  # type: ignore[return-value]

    def submit(self, uid: str, body: dict[str, Any], *, admitted: bool = True) -> Ticket:
        ticket = Ticket.issue()
        if admitted:
            assert self.board.open(ticket.key, 100) == "admitted"
        self.tickets[uid] = ticket
        self.queue.put((0, uid, time.monotonic(), {**body, TICKET_KEY: ticket.to_dict()}))
        return ticket

    def kinds(self, uid: str) -> list[str]:
        return [f.kind for f in self.transport.frames(uid, self.tickets[uid])]

    def counter(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.runtime.counters.snapshot().values.get(key, 0.0)  # type: ignore[attr-defined]


def _runtime(listeners: float, catalogue: VoiceCatalogue | None = None) -> WorkerRuntime:
    # The emulated engine's cost is known, so the scheduler starts from it instead of measuring.
    cost = CostModel(compute_s_per_char=1 / TYPICAL_CHARS_PER_AUDIO_S / listeners, overhead_s=0.01)
    context = RequestContext(
        catalogue or VoiceCatalogue(["af_heart"]), max_input_chars=20_000, languages=frozenset("a")
    )
    shared = Shared(board=StreamBoard(), counters=Counters())
    return WorkerRuntime(EmulatedEngine(EmulatedSpec(listeners, 0.01)), Scheduler(cost), shared, context)


@pytest.fixture
def worker(request: pytest.FixtureRequest) -> Iterator[_Worker]:
    """A loop serving in a thread; `@pytest.mark.parametrize("worker", [N], indirect=True)` sets its speed."""
    listeners = getattr(request, "param", 20.0)
    catalogue = _BrokenCatalogue(["af_heart"]) if listeners == "broken" else None
    runtime = _runtime(20.0 if catalogue else listeners, catalogue)
    harness = _Worker(runtime, _Transport(), Queue())
    thread = threading.Thread(
        target=SpeechLoop().serve, args=(runtime, harness.queue, harness.transport), daemon=True
    )
    thread.start()
    yield harness
    harness.queue.put(_SENTINEL_VALUE)
    thread.join(timeout=60)
    assert not thread.is_alive(), "the loop did not stop on LitServe's sentinel"
    assert harness.board.size() == 0, "a board entry leaked"
    for uid in harness.tickets:
        assert harness.transport.finished(uid), f"{uid} never got its FINISH"


@pytest.mark.parametrize("worker", ["broken"], indirect=True)
def test_an_unexpected_error_while_decoding_still_ends_the_request_and_frees_its_slot(
    worker: _Worker,
) -> None:
    worker.submit("a", {"input": "hello"})
    worker.transport.wait_for(lambda: worker.transport.finished("a"))
    assert worker.kinds("a") == ["start", "error"]
    assert worker.board.size() == 0, "the admission slot must not leak"


def test_a_request_whose_entry_is_gone_never_runs(worker: _Worker) -> None:
    worker.submit("a", {"input": "hello"}, admitted=False)  # the front gave up on it before it was taken
    worker.transport.wait_for(lambda: worker.transport.finished("a"))
    assert worker.kinds("a") == ["start"]
    assert worker.counter("tts_chunks_synthesized_total") == 0


def test_several_streams_share_the_worker_and_each_gets_all_its_audio(worker: _Worker) -> None:
    texts = {uid: SENTENCE * n for uid, n in (("long", 6), ("mid", 3), ("short", 1))}
    for uid, text in texts.items():
        worker.submit(uid, {"input": text, "response_format": "pcm"})
    worker.transport.wait_for(lambda: all(worker.transport.finished(uid) for uid in texts))
    for uid in texts:
        frames = worker.transport.frames(uid, worker.tickets[uid])
        assert frames[0].kind == "start" and frames[-1].kind == "end"
        audio_s = frames[-1].data()["audio_seconds"]
        assert sum(len(f.audio) for f in frames if f.kind == "audio") == round(audio_s * 24_000) * 2
    order = [
        (uid, worker.tickets[uid].parse(d).kind)
        for uid, d, s in worker.transport.sent
        if s == LitAPIStatus.OK
    ]
    assert order.index(("short", "end")) < order.index(("long", "end")), "the short one waited for the long"
    assert worker.counter("tts_requests_completed_total") == 3


@pytest.mark.parametrize("worker", [2.0], indirect=True)
def test_a_client_that_leaves_mid_chunk_stops_the_chunk_in_flight(worker: _Worker) -> None:
    ticket = worker.submit("a", {"input": SENTENCE * 20, "response_format": "pcm"})
    worker.transport.wait_for(lambda: "audio" in worker.kinds("a"))
    worker.board.cancel(ticket.key)  # the front saw the client leave
    worker.transport.wait_for(lambda: worker.transport.finished("a"))
    assert worker.kinds("a")[-1] == "audio", "a cancelled stream gets neither an end nor an error"
    assert worker.counter("tts_chunks_interrupted_total") == 1
    assert worker.counter("tts_requests_cancelled_total", stage="streaming") == 1


def test_a_request_cancelled_while_waiting_never_runs_and_is_counted(worker: _Worker) -> None:
    ticket = Ticket.issue()
    assert worker.board.open(ticket.key, 10) == "admitted"
    worker.board.cancel(ticket.key)
    worker.tickets["a"] = ticket
    worker.queue.put((0, "a", time.monotonic(), {"input": "hello", TICKET_KEY: ticket.to_dict()}))
    worker.transport.wait_for(lambda: worker.transport.finished("a"))
    assert worker.kinds("a") == ["start"]
    assert worker.counter("tts_requests_cancelled_total", stage="queued") == 1


@pytest.mark.parametrize("worker", [5.0], indirect=True)
def test_streams_still_running_at_shutdown_get_an_error_the_client_can_see(worker: _Worker) -> None:
    for uid in ("a", "b"):
        worker.submit(uid, {"input": SENTENCE * 20, "response_format": "mp3"})
    worker.transport.wait_for(lambda: "audio" in worker.kinds("a"))
    worker.queue.put(_SENTINEL_VALUE)  # LitServe stops the worker
    worker.transport.wait_for(lambda: worker.transport.finished("a") and worker.transport.finished("b"))
    for uid in ("a", "b"):
        last = worker.transport.frames(uid, worker.tickets[uid])[-1]
        assert last.kind == "error" and "stopped before this request finished" in last.error().message


def test_a_waiting_request_cancelled_by_shutdown_gets_an_error_the_client_can_see() -> None:
    runtime = _runtime(20.0)
    transport, queue = _Transport(), Queue()  # type: ignore[var-annotated]
    ticket = Ticket.issue()
    assert runtime.board.open(ticket.key, 10) == "admitted"
    runtime.board.cancel_all("shutdown")
    queue.put((0, "a", time.monotonic(), {"input": "hello", TICKET_KEY: ticket.to_dict()}))
    queue.put(_SENTINEL_VALUE)
    SpeechLoop().serve(runtime, queue, transport)
    frames = transport.frames("a", ticket)
    assert frames[-1].kind == "error" and "shutting down" in frames[-1].error().message
    assert transport.finished("a") and runtime.board.size() == 0  # type: ignore[attr-defined]
