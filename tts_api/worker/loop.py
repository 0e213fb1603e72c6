"""LitServe's inference-worker loop for speech: many streams at once, one chunk per step, deadline first.

LitServe's own streaming loop runs one request's generator to the end before it takes the next, so a
newcomer waits in silence behind a long stream. This loop keeps several streams active and asks the
scheduler, at every chunk boundary, whose chunk runs next. It speaks LitServe's transport as LitServe's
loops do: requests come from the worker's request queue, frames go back with `put_response`.

Each step: take a request if there is room (blocking only when idle, so an idle worker does not spin),
read every stream's board entry in one round trip (cancelled? how much has its client taken?), admit the
waiting request if the scheduler says it fits, then synthesize one chunk of the stream it picks. A request
whose client left is dropped before its next chunk; one abandoned while waiting never runs.
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass
from queue import Empty, Queue
from typing import Any

from litserve.loops.base import _SENTINEL_VALUE, LitLoop
from litserve.utils import LitAPIStatus, LoopResponseType

from ..errors import Overloaded, TTSError
from ..ipc.frames import TICKET_KEY, Ticket
from ..ipc.streams import StreamState
from ..ipc.workers import WorkerProcess
from ..schemas import PlannedSpeech
from ..synth.progress import Progress
from ..synth.speech import Interrupted, RenderJob
from .runtime import WorkerRuntime
from .scheduler import Pick, StreamView
from .stream import Step, Stream

__all__ = ["SpeechLoop"]

logger = logging.getLogger(__name__)

IDLE_WAIT_S = 1.0  # nothing to do: block on the request queue this long per round
AHEAD_WAIT_S = 0.05  # every stream is far ahead of its reader: look again after this long
REPORT_EVERY_S = 0.5
MAX_HOPS = 3  # a request no worker could start after this many hand-backs waits where it is
HOPS_KEY = "_tts_hops"  # in the request body: how many workers handed it back


@dataclass
class _Waiting:
    """A request taken from the queue but not yet admitted (at most one per worker)."""

    item: tuple[Any, ...]  # as it came from the queue, to hand it back to a sibling worker
    uid: str
    reply_to: int
    ticket: Ticket
    speech: PlannedSpeech
    view: StreamView
    hops: int  # how many workers handed it back already


class SpeechLoop(LitLoop):
    """See the module docstring. Pickled into each worker with the LitAPI; state is made in `__call__`."""

    def __call__(  # type: ignore[override]
        self,
        lit_api: Any,
        device: str,
        worker_id: int,
        request_queue: Queue[Any],
        transport: Any,
        workers_setup_status: dict[str, str],
        callback_runner: Any,
    ) -> None:
        self.serve(lit_api.runtime, request_queue, transport, workers=max(1, len(workers_setup_status)))

    def serve(
        self, runtime: WorkerRuntime, requests: Queue[Any], transport: Any, *, workers: int = 1
    ) -> None:
        """Serve `requests` (LitServe's queue, shared by `workers` workers) on `runtime`, answering through
        `transport`, until the queue yields LitServe's stop sentinel; streams still running then get an
        error."""
        self.runtime, self.transport, self.queue = runtime, transport, requests
        self.scheduler = runtime.scheduler
        self.siblings = workers - 1
        self.streams: dict[str, Stream] = {}
        self.waiting: _Waiting | None = None
        self._reported_at = 0.0
        self._reported = (-1, -1, -1)
        self._ahead = False  # the last round found nothing eligible to run
        self._queued_since: float | None = None  # since when requests wait that this worker had no room for
        self._me = WorkerProcess.current()
        while True:
            # A round that follows a chunk starts at once: all of it is what the next chunk costs the others,
            # unless it also took a request (parsing and planning it is paid once per request).
            started = time.monotonic() if self.streams and not self._ahead else None
            waiting = self.waiting
            if not self._take():
                break
            if self.waiting is not waiting:
                started = None
            self._poll()
            self._admit()
            if not self._admit_more():
                break
            self._ahead = not self._run_one(started)
            self._report()
        self._stop_all(TTSError("the worker stopped before this request finished"))

    # --- Requests in --------------------------------------------------------------------------------

    def _take(self) -> bool:
        """Take one request if there is room to start it soon; False when LitServe asks the loop to stop.

        A worker with no room leaves requests in the shared queue, where a sibling with room takes them;
        only a request that no sibling took for a step comes here anyway (admission then decides: a short
        one may go ahead of long streams that cannot be kept gap-free).
        """
        if self.waiting is not None or not self._may_take():
            if self._ahead:
                time.sleep(AHEAD_WAIT_S)
            return True
        try:
            if not self.streams:
                item = self.queue.get(timeout=IDLE_WAIT_S)
            elif self._ahead:
                item = self.queue.get(timeout=AHEAD_WAIT_S)
            else:
                item = self.queue.get_nowait()
        except Empty:
            return True
        if item == _SENTINEL_VALUE:
            return False
        self._receive(item)
        return True

    def _may_take(self) -> bool:
        if not self.streams or self.scheduler.has_room(time.monotonic(), self._views()):
            self._queued_since = None
            return True
        if self._queue_size() == 0:
            self._queued_since = None
            return False
        now = time.monotonic()
        if self._queued_since is None:
            self._queued_since = now
        return not self.siblings or now - self._queued_since >= self.scheduler.max_step_s

    def _queue_size(self) -> int:
        try:
            return self.queue.qsize()
        except (NotImplementedError, OSError):  # macOS queues cannot count
            return 0

    def _receive(self, item: tuple[Any, ...]) -> None:
        reply_to, uid, _queued_at, payload = item
        payload = dict(payload)
        hops = int(payload.pop(HOPS_KEY, 0))
        try:
            ticket = Ticket.from_dict(payload.pop(TICKET_KEY, None))
        except ValueError:
            logger.error("request %s came without a ticket; refusing it", uid)
            self.put_error_response(
                self.transport, reply_to, uid, ValueError("no ticket"), LoopResponseType.STREAMING
            )
            return
        # First, say who is working on it: the front fails the request visibly if this process dies.
        self._send(uid, reply_to, ticket.start_frame(self._me))
        if not hops:
            self.runtime.count("tts_requests_started_total")
        try:
            speech = self.runtime.parse(payload, live=ticket.live)
        except Exception as exc:  # a TTSError (rare: the front validated already) or a bug
            self._fail(uid, reply_to, ticket, exc)
            return
        now = time.monotonic()
        # A live stream's text is still to come: admitted as a typical request would be.
        chars = round(self.scheduler.arrivals.typical_chars) if ticket.live else len(speech.request.input)
        self.scheduler.arrived(now, chars)
        view = StreamView(ticket.key, now, speech.request.speed, remaining_chars=chars)
        self.waiting = _Waiting(item, uid, reply_to, ticket, speech, view, hops)

    # --- The board ----------------------------------------------------------------------------------

    def _poll(self) -> None:
        """Read every stream's entry; drop those whose client left, note what the others' clients took, and
        hand live streams the text their clients sent since."""
        keys = [*self.streams, *([self.waiting.ticket.key] if self.waiting else [])]
        if not keys:
            return
        live = [key for key, stream in self.streams.items() if stream.live is not None]
        states = self.runtime.poll(keys, live)
        now = time.monotonic()
        for key, state in states.items():
            if not state.stopped:
                stream = self.streams.get(key)
                if stream is not None and stream.interrupted:  # cannot happen unless the board lost track
                    del self.streams[key]
                    self._release(stream)
                    self._fail(
                        stream.uid, stream.reply_to, stream.ticket, TTSError("synthesis was interrupted")
                    )
                elif stream is not None:
                    stream.view.delivered_audio_s = state.delivered_s
                    if state.text or state.flush or state.ended:
                        self._feed(stream, state, now)
            elif key in self.streams:
                self._stop(self.streams.pop(key), state)
            elif self.waiting is not None and key == self.waiting.ticket.key:
                waiting, self.waiting = self.waiting, None
                self._stopped_waiting(waiting, state)

    def _feed(self, stream: Stream, state: StreamState, now: float) -> None:
        try:
            stream.feed(state.text, flush=state.flush, ended=state.ended, now=now, fed_at=state.fed_at)
        except Exception as exc:  # more text than its bound (the front bounds it first), a bad pause tag
            del self.streams[stream.key]
            self._release(stream)
            self._fail(stream.uid, stream.reply_to, stream.ticket, exc)

    def _stopped_waiting(self, waiting: _Waiting, state: StreamState) -> None:
        if state.reason == "shutdown":
            self._fail(waiting.uid, waiting.reply_to, waiting.ticket, _shutting_down())
            return
        self.runtime.log_cancel(
            waiting.ticket, waiting.speech.request, Progress(), "queued", state.reason or "gone"
        )
        self._end(waiting.uid, waiting.reply_to, waiting.ticket)

    def _stop(self, stream: Stream, state: StreamState) -> None:
        self._release(stream)
        if state.reason == "shutdown":
            self._fail(stream.uid, stream.reply_to, stream.ticket, _shutting_down())
            return
        stage = "streaming" if stream.view.playing else "queued"
        if stream.interrupted:
            self.runtime.count("tts_chunks_interrupted_total")
        reason = state.reason or "gone"
        self.runtime.log_cancel(
            stream.ticket,
            stream.speech.request,
            stream.progress,
            stage,
            f"{reason}, chunk in flight interrupted" if stream.interrupted else reason,
        )
        self._end(stream.uid, stream.reply_to, stream.ticket)

    # --- Admission and steps ------------------------------------------------------------------------

    def _admit(self) -> None:
        waiting = self.waiting
        if waiting is None:
            return
        now = time.monotonic()
        if not self.scheduler.admits(now, self._views(), waiting.view):
            if self.siblings and waiting.hops < MAX_HOPS:
                self._hand_back(waiting)
            elif logger.isEnabledFor(logging.DEBUG):
                logger.debug("request %s waits: %d active", waiting.ticket.request_id, len(self.streams))
            return
        self.waiting = None
        try:
            stream = self.runtime.open_stream(waiting.uid, waiting.reply_to, waiting.ticket, waiting.speech)
        except Exception as exc:
            self._fail(waiting.uid, waiting.reply_to, waiting.ticket, exc)
            return
        stream.view.arrived_s, stream.view.admitted_s = waiting.view.arrived_s, now
        self.streams[stream.key] = stream
        if waiting.ticket.live:
            stream.expect(waiting.view.remaining_chars)
            # The words its client sent while it waited: taken now, its first chunk may be this round's step
            # (else another stream's chunk goes first, and the newcomer waits that long for nothing).
            self._poll()

    def _admit_more(self) -> bool:
        """With an engine that batches, take and admit more of what waits before the step (up to a batch's
        worth), so that a burst of newcomers gets its first chunks in one step; False when LitServe asks
        the loop to stop."""
        for _ in range(self.scheduler.batch - 1):
            if self.waiting is not None or not self.streams or self._queue_size() == 0:
                return True
            if not self._take():
                return False
            self._admit()
        return True

    def _hand_back(self, waiting: _Waiting) -> None:
        """Put a request this worker cannot start back in the shared queue, for a sibling with room."""
        self.waiting = None
        reply_to, uid, queued_at, payload = waiting.item
        self.queue.put((reply_to, uid, queued_at, {**payload, HOPS_KEY: waiting.hops + 1}))
        logger.debug("request %s handed back to the queue (no room here)", waiting.ticket.request_id)

    def _views(self) -> list[StreamView]:
        return [s.view for s in self.streams.values()]

    def _run_one(self, started: float | None = None) -> bool:
        """Run the step the scheduler picks (one stream's chunk, or a batch of several); False when no
        stream may run now.

        `started`: when this round began, if it did not wait for work. The chunk is then costed from there:
        the board round trip, admission and picking are paid once per chunk too, and with a fast engine
        (a GPU, emulated:200) they are a good part of it.
        """
        waiting = self.waiting is not None or self._queued_since is not None
        picks = self.scheduler.pick_batch(time.monotonic(), self._views(), waiting=waiting)
        if not picks:
            return False
        if len(picks) > 1:
            self._run_batch(picks, started)
            return True
        pick = picks[0]
        stream = self.streams[pick.key]
        try:
            step = self.runtime.step(stream, pick.max_chars)
        except Interrupted:
            # Its client left mid-chunk: the board says so; the next _poll drops it (the chunk is lost).
            stream.interrupted = True
            return True
        except Exception as exc:
            self._drop(stream, exc)
            return True
        if started is not None:
            step.compute_s = max(step.compute_s, time.monotonic() - started)
        if logger.isEnabledFor(logging.DEBUG):
            view, now = stream.view, time.monotonic()
            logger.debug(
                "step %s: limit %d chars, took %d (%.2f s of audio) in %.2f s (model said %.2f s); "
                "player has %.2f s left; %d streams",
                stream.ticket.request_id,
                pick.max_chars,
                step.chars,
                step.audio_s,
                step.compute_s,
                self.scheduler.cost.cost(step.chars, view.speed),
                0.0 if (out := view.played_out_s()) is None else out - now,
                len(self.streams),
            )
        self._deliver(stream, step)
        return True

    def _run_batch(self, picks: list[Pick], started: float | None) -> None:
        """One engine step for several streams: each prepares its chunk (a pause or an ending needs none),
        the engine synthesizes the chunks together, and each stream's audio goes out."""
        jobs: list[tuple[Stream, RenderJob]] = []
        preparing = time.monotonic()
        for pick in picks:
            stream = self.streams[pick.key]
            try:
                work = stream.prepare(pick.max_chars)
            except Exception as exc:
                self._drop(stream, exc)
                continue
            if isinstance(work, Step):
                work.costed = False  # made without the engine, or before this step: it says nothing of costs
                self._deliver(stream, work)
            else:
                jobs.append((stream, work))
        if not jobs:
            return
        prepared = time.monotonic()
        try:
            steps = self.runtime.step_batch(jobs, self._send_frames, (prepared - preparing) / len(picks))
        except Interrupted:  # every one of their clients left mid-step: the next _poll drops them
            for stream, _ in jobs:
                stream.interrupted = True
            return
        except Exception as exc:
            for stream, _ in jobs:
                self._drop(stream, exc)
            return
        if started is not None:  # the round before the step (the board, admission, the pick) is the step's
            for step in steps:
                step.compute_s += max(0.0, preparing - started)
        logger.debug(
            "batched step: %d streams, %.2f s (%.1f ms per member)",
            len(steps),
            time.monotonic() - preparing,
            self.scheduler.cost.member_s * 1000,
        )
        for (stream, _), step in zip(jobs, steps, strict=True):
            self._deliver(stream, step)

    def _drop(self, stream: Stream, exc: Exception) -> None:
        """The stream failed: release it and tell its client."""
        del self.streams[stream.key]
        self._release(stream)
        self._fail(stream.uid, stream.reply_to, stream.ticket, exc)

    def _deliver(self, stream: Stream, step: Step) -> None:
        view, now = stream.view, time.monotonic()
        if step.audio_s > 0:
            if view.first_audio_s is None:
                view.first_audio_s = now
                self.scheduler.started(step.chars)
                self.runtime.first_audio(now - (view.admitted_s or view.arrived_s))
            else:
                late_s = now - (view.played_out_s() or now)  # the player's buffer ran out then
                if late_s > 0:
                    self.runtime.missed_deadline(late_s)
            view.sent_audio_s += step.audio_s
            self.runtime.learn(stream, step)
        self._send_frames(stream, step)
        if step.done:
            del self.streams[stream.key]
            self._release(stream)
            self.runtime.completed(stream)
            self._end(stream.uid, stream.reply_to, stream.ticket)

    # --- Frames out ---------------------------------------------------------------------------------

    def _send_frames(self, stream: Stream, step: Step) -> None:
        """Send a step's frames now (one of a batch, as soon as they are made); `_deliver` then has none."""
        for frame in step.frames:
            self._send(stream.uid, stream.reply_to, frame)
        step.frames = []

    def _send(self, uid: str, reply_to: int, frame: bytes) -> None:
        self.put_response(self.transport, reply_to, uid, frame, LitAPIStatus.OK, LoopResponseType.STREAMING)

    def _finish(self, uid: str, reply_to: int) -> None:
        self.put_response(
            self.transport, reply_to, uid, "", LitAPIStatus.FINISH_STREAMING, LoopResponseType.STREAMING
        )

    def _end(self, uid: str, reply_to: int, ticket: Ticket) -> None:
        """The request is over, however it went: LitServe's front forgets it, the board closes its entry."""
        try:
            self._finish(uid, reply_to)
        finally:
            self.runtime.close_entry(ticket.key)

    def _fail(self, uid: str, reply_to: int, ticket: Ticket, exc: BaseException) -> None:
        """Send the client an error frame for `exc` and end the request."""
        error = (
            exc
            if isinstance(exc, TTSError)
            else TTSError(f"speech synthesis failed (request id {ticket.request_id})")
        )
        if not isinstance(exc, TTSError):
            logger.error("request %s failed", ticket.request_id, exc_info=exc)
        self.runtime.count("tts_requests_failed_total")
        try:
            self._send(uid, reply_to, ticket.error_frame(error))
        finally:
            self._end(uid, reply_to, ticket)

    def _release(self, stream: Stream) -> None:
        """Free the stream's generator (its request may still need an ending)."""
        stream.close()
        if not self.streams:
            _trim_heap()

    def _stop_all(self, error: TTSError) -> None:
        for stream in list(self.streams.values()):
            self._release(stream)
            self._fail(stream.uid, stream.reply_to, stream.ticket, error)
        self.streams.clear()
        if self.waiting is not None:
            self._fail(self.waiting.uid, self.waiting.reply_to, self.waiting.ticket, error)
            self.waiting = None

    def _report(self) -> None:
        """Publish the worker's gauges when its streams change, and at least every REPORT_EVERY_S."""
        paused = sum(self.scheduler.paused(s.view) for s in self.streams.values())
        now = time.monotonic()
        counts = (len(self.streams) - paused, int(self.waiting is not None), paused)
        if counts == self._reported and now - self._reported_at < REPORT_EVERY_S:
            return
        self._reported_at, self._reported = now, counts
        self.runtime.report(*counts)


def _trim_heap() -> None:
    """Give freed memory back to the system once the worker is idle: glibc keeps the arenas of a long
    request's tensors otherwise, and the worker's RSS would stay at its high-water mark."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


def _shutting_down() -> Overloaded:
    return Overloaded("the server is shutting down; retry on another replica", retry_after_s=1)
