"""The worker loop through its public interface: LitServe's queue in, LitServe's transport out, a real
WorkerRuntime on the emulated engine (no model) with an in-process board and counters.

Every request it takes ends with a FINISH and a closed board entry, whatever happens to it."""

from __future__ import annotations

import itertools
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
from tts_api.synth.costs import TYPICAL_CHARS_PER_AUDIO_S, CostModel
from tts_api.synth.emulated import EmulatedEngine
from tts_api.text.planning import MAX_CHUNK_CHARS
from tts_api.voices import VoiceCatalogue
from tts_api.worker.loop import SpeechLoop
from tts_api.worker.runtime import WorkerRuntime
from tts_api.worker.scheduler import Scheduler
from tts_api.worker.stream import Step, Stream

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank. "


class _BrokenCatalogue(VoiceCatalogue):
    def resolve(self, expression: str) -> Any:
        raise RuntimeError("the voice table is corrupt")  # not a TTSError: a bug, not bad input


@dataclass
class _Transport:
    """LitServe's transport as the loop sees it: records what goes to each request, in order. With a
    board, its clients read everything at once (the front reports that), except the `stalled` ones."""

    sent: list[tuple[str, Any, LitAPIStatus]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    board: StreamBoard | None = None
    tickets: dict[str, Ticket] = field(default_factory=dict)
    stalled: set[str] = field(default_factory=set)

    def send(self, item: Any, consumer_id: int) -> None:
        uid, (data, status, _kind, _worker) = item
        ticket = self.tickets.get(uid)
        if self.board and ticket and status == LitAPIStatus.OK and uid not in self.stalled:
            frame = ticket.parse(data)
            if frame.kind == "audio":
                self.board.delivered(ticket.key, frame.audio_end_s)
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


def _worker(runtime: WorkerRuntime) -> _Worker:
    transport = _Transport(board=runtime.board)  # type: ignore[arg-type]
    return _Worker(runtime, transport, Queue(), transport.tickets)


def _runtime(
    listeners: float,
    catalogue: VoiceCatalogue | None = None,
    *,
    shared: Shared | None = None,
    scheduler: type[Scheduler] = Scheduler,
    **options: Any,
) -> WorkerRuntime:
    # The emulated engine's cost is known, so the scheduler starts from it instead of measuring.
    cost = CostModel(compute_s_per_char=1 / TYPICAL_CHARS_PER_AUDIO_S / listeners, overhead_s=0.01)
    context = RequestContext(
        catalogue or VoiceCatalogue(["af_heart"]), max_input_chars=20_000, languages=frozenset("a")
    )
    shared = shared or Shared(board=StreamBoard(), counters=Counters())
    engine = EmulatedEngine(EmulatedSpec(listeners, 0.01, options.get("batch", 1)))
    return WorkerRuntime(engine, scheduler(cost, **options), shared, context)


@pytest.fixture
def worker(request: pytest.FixtureRequest) -> Iterator[_Worker]:
    """A loop serving in a thread; `@pytest.mark.parametrize("worker", [N], indirect=True)` sets its speed."""
    listeners = getattr(request, "param", 20.0)
    catalogue = _BrokenCatalogue(["af_heart"]) if listeners == "broken" else None
    runtime = _runtime(20.0 if catalogue else listeners, catalogue)
    harness = _worker(runtime)
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


@pytest.mark.parametrize("worker", [10.0], indirect=True)
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
    assert frames[-1].error().headers()["Retry-After"] == "1"  # the client is told when to come back
    assert transport.finished("a") and runtime.board.size() == 0  # type: ignore[attr-defined]


class _Workers:
    """Two loops on one shared queue, as LitServe runs `--workers-per-device 2`; one board for both."""

    def __init__(self, *runtimes: WorkerRuntime) -> None:
        self.queue: Queue[Any] = Queue()
        self.runtimes, self.transport = runtimes, _Transport(board=runtimes[0].board)  # type: ignore[arg-type]
        self.tickets = self.transport.tickets
        self.threads = [
            threading.Thread(
                target=SpeechLoop().serve,
                args=(runtime, self.queue, self.transport),
                kwargs={"workers": len(runtimes)},
                daemon=True,
            )
            for runtime in runtimes
        ]

    def start(self, index: int) -> None:
        self.threads[index].start()

    def submit(self, uid: str, text: str) -> None:
        ticket = Ticket.issue()
        assert self.runtimes[0].board.open(ticket.key, 100) == "admitted"
        self.tickets[uid] = ticket
        body = {"input": text, "response_format": "pcm", TICKET_KEY: ticket.to_dict()}
        self.queue.put((0, uid, time.monotonic(), body))

    def started(self, index: int) -> float:
        values = self.runtimes[index].counters.snapshot().values  # type: ignore[attr-defined]
        return values.get(("tts_requests_started_total", ()), 0.0)

    def stop(self) -> None:
        for thread in self.threads:
            if thread.is_alive():
                self.queue.put(_SENTINEL_VALUE)
        for thread in self.threads:
            thread.join(timeout=60)
        assert self.runtimes[0].board.size() == 0


def _shared_pair(listeners: float, **options: Any) -> _Workers:
    board = StreamBoard()
    return _Workers(
        *(_runtime(listeners, shared=Shared(board, Counters()), **options) for _ in range(2))  # type: ignore[arg-type]
    )


def test_a_busy_worker_leaves_a_request_to_its_idle_sibling() -> None:
    """Slower than two listeners, a worker with a young long stream has no room: it does not take the
    next request from the shared queue, so the idle sibling does."""
    workers = _shared_pair(1.5)
    workers.start(0)
    workers.submit("first", SENTENCE * 30)
    workers.transport.wait_for(
        lambda: "audio" in [f.kind for f in workers.transport.frames("first", workers.tickets["first"])]
    )
    workers.start(1)
    workers.submit("second", SENTENCE * 30)
    workers.transport.wait_for(lambda: workers.started(1) == 1)
    assert workers.started(0) == 1, "the busy worker took a request it had no room for"
    for uid in ("first", "second"):
        workers.runtimes[0].board.cancel(workers.tickets[uid].key)
    workers.transport.wait_for(lambda: all(workers.transport.finished(u) for u in ("first", "second")))
    workers.stop()


class _RefusesLong(Scheduler):
    """Room for anything, but a long request cannot start next to another stream."""

    def has_room(self, now: float, active: Any) -> bool:
        return True

    def admits(self, now: float, active: Any, candidate: Any) -> bool:
        return not [s for s in active if not s.finished] or candidate.remaining_chars < 1000


def test_a_request_a_worker_cannot_start_goes_back_to_the_queue_for_a_sibling() -> None:
    workers = _shared_pair(20.0, scheduler=_RefusesLong)
    workers.start(0)
    workers.submit("short", SENTENCE * 60)  # keeps worker 0 busy for a while
    workers.transport.wait_for(
        lambda: "audio" in [f.kind for f in workers.transport.frames("short", workers.tickets["short"])]
    )
    workers.submit("long", SENTENCE * 20)
    workers.transport.wait_for(lambda: workers.started(0) == 2)  # it took it, could not start it...
    workers.start(1)
    workers.transport.wait_for(lambda: workers.transport.finished("long"))  # ...and the sibling served it
    frames = workers.transport.frames("long", workers.tickets["long"])
    assert [f.kind for f in frames].count("start") == 2 and frames[-1].kind == "end"
    assert workers.runtimes[1].counters.snapshot().values[("tts_requests_completed_total", ())] == 1  # type: ignore[attr-defined]
    workers.stop()


def test_a_stream_paused_for_a_slow_reader_does_not_block_a_newcomer() -> None:
    """On a worker that feeds fewer than two listeners, a stream whose client reads nothing stops at the
    lead cap and stops counting: a newcomer is served meanwhile."""
    runtime = _runtime(1.5, max_lead_s=3.0)
    harness = _worker(runtime)
    harness.transport.stalled.add("slow")
    thread = threading.Thread(
        target=SpeechLoop().serve, args=(runtime, harness.queue, harness.transport), daemon=True
    )
    thread.start()
    slow = harness.submit(
        "slow", {"input": SENTENCE * 30, "response_format": "pcm"}
    )  # its client reads nothing
    harness.transport.wait_for(lambda: "audio" in harness.kinds("slow"))
    harness.submit("newcomer", {"input": "A short question?", "response_format": "pcm"})
    harness.transport.wait_for(lambda: harness.transport.finished("newcomer"))
    assert harness.kinds("newcomer")[-1] == "end" and not harness.transport.finished("slow")
    runtime.board.cancel(slow.key)
    harness.queue.put(_SENTINEL_VALUE)
    thread.join(timeout=60)
    assert runtime.board.size() == 0


class _DistantBoard(StreamBoard):
    """A board a round trip away: every read of the streams' states takes 30 ms."""

    def poll(self, keys: list[str], take: list[str] | None = None) -> Any:
        time.sleep(0.03)
        return super().poll(keys, take)


def test_a_chunk_is_costed_with_the_loop_round_around_it() -> None:
    """The board round trip, admission and picking are paid once per chunk too. With a fast engine they
    are a good part of a chunk's cost, and a scheduler that did not know admitted more streams on
    emulated:200 than it could feed."""
    runtime = _runtime(200.0, shared=Shared(board=_DistantBoard(), counters=Counters()))
    engine_cost = runtime.engine.costs().cost(MAX_CHUNK_CHARS, 1.0)  # type: ignore[attr-defined]
    harness = _worker(runtime)
    thread = threading.Thread(target=SpeechLoop().serve, args=(runtime, harness.queue, harness.transport))
    thread.start()
    harness.submit("a", {"input": SENTENCE * 20, "response_format": "pcm"})
    harness.transport.wait_for(lambda: harness.transport.finished("a"))
    harness.queue.put(_SENTINEL_VALUE)
    thread.join(timeout=60)
    # Most chunks are this big; the 30 ms read is in what the model learned (less a little slack for the
    # least-squares fit; without the round it learns the engine's sleep alone).
    assert runtime.scheduler.cost.cost(MAX_CHUNK_CHARS, 1.0) >= engine_cost + 0.02


def test_each_stream_of_a_batched_step_is_sent_as_soon_as_its_audio_is_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batched step encodes its members one after another: a member's client gets its audio then, not
    once the whole batch is encoded (64 members' encoding would be each one's delivery delay)."""
    events: list[tuple[str, str]] = []
    finish = Stream.finish

    def encoded(self: Stream, pieces: Any) -> Step:
        step = finish(self, pieces)
        events.append(("encoded", self.uid))
        return step

    monkeypatch.setattr(Stream, "finish", encoded)
    harness = _worker(_runtime(20.0, batch=4))
    send = harness.transport.send

    def sent(item: Any, consumer_id: int) -> None:
        uid, (_data, status, _kind, _worker) = item
        if status == LitAPIStatus.OK:
            events.append(("sent", uid))
        send(item, consumer_id)

    harness.transport.send = sent  # type: ignore[method-assign]
    uids = ["a", "b", "c", "d"]
    for uid in uids:
        harness.submit(uid, {"input": SENTENCE * 2, "response_format": "pcm"})
    thread = threading.Thread(
        target=SpeechLoop().serve, args=(harness.runtime, harness.queue, harness.transport), daemon=True
    )
    thread.start()
    try:
        harness.transport.wait_for(lambda: all(harness.transport.finished(uid) for uid in uids))
    finally:
        harness.queue.put(_SENTINEL_VALUE)
        thread.join(timeout=60)
    assert harness.counter("tts_batched_chunks_total") > harness.counter("tts_batched_steps_total") > 0
    # Within a step, each member's frames go out before the next member is encoded.
    for (kind, uid), (next_kind, next_uid) in itertools.pairwise(events):
        if kind == "encoded" and next_kind == "encoded":
            raise AssertionError(f"{uid} was encoded, then {next_uid}, before {uid}'s frames were sent")
