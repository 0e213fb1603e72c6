"""WorkerRuntime: what one worker's loop runs on, made once in `setup`.

The engine (and the cancel watch over it), the scheduler with the cost model measured at start-up, the
request context that parses bodies, and the shared board and counters. The loop (loop.py) reaches all of
it through this one object, and nothing here knows the loop.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ..ipc.frames import Ticket
from ..ipc.manager import CalibrationsProxy, Shared
from ..ipc.streams import StreamState
from ..model.layout import ModelDir
from ..schemas import PlannedSpeech, RequestContext, SpeechRequest, parse_speech_request
from ..settings import ModelEngine, Settings, parse_emulated
from ..synth.costs import CostModel
from ..synth.emulated import EmulatedEngine
from ..synth.progress import Progress
from ..synth.speech import RenderJob, SpeechEngine, time_text
from ..voices import VoiceCatalogue, installed_languages
from .scheduler import Scheduler
from .stream import Step, Stream
from .watch import ChunkWatch

__all__ = ["WorkerRuntime", "available_cpus", "calibrate"]

logger = logging.getLogger(__name__)

# Spoken at start-up to warm the engine up, then to measure it on chunks of four sizes, from a voice agent's
# first few words to as long as the chunks a long text is cut into (what the capacity gauge speaks for); the
# cost model keeps learning from every chunk afterwards (a start-up on a busy machine is corrected within a
# few).
WARMUP_TEXT = "Hello there."
# Streams per batched step on a GPU unless --batch says otherwise: where a pass of 16 short chunks costs about
# what one does (not yet measured on a GPU by this server: see docs/engines.md).
BATCH_ON_GPU = 16
CALIBRATION_TEXTS = (
    "Good evening.",
    "Hello there, good morning.",
    "This sentence is synthesized at start-up, to measure how fast this worker speaks.",
    "This paragraph is synthesized once at start-up as well, so that the worker knows what a chunk of many "
    "words costs before any listener arrives: a long text is read in chunks about this long, and how fast "
    "they are made is how many listeners the worker can feed. It says nothing of note, and nobody hears it, "
    "but it is spoken like any other text.",
)


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup quota (`docker run --cpus=2`, a pod's
    CPU limit), which `os.cpu_count()` ignores and which would make every worker oversubscribe."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def calibrate(
    engine: SpeechEngine, catalogue: VoiceCatalogue, known: CalibrationsProxy, kind: str
) -> tuple[CostModel, bool]:
    """Warm the engine up and time it on chunks of four sizes, unless a worker of the same `kind` did
    already (this one replaces it): the cost model the scheduler starts from, and whether it was known."""
    warm_voice = "af_heart" if "af_heart" in catalogue else next(iter(catalogue.voices))
    voice = catalogue.resolve(warm_voice)
    time_text(engine, WARMUP_TEXT, voice)  # the first synthesis pays for lazy set-up, whatever follows
    points = known.get(kind)
    if points is not None:
        return CostModel.fit(points), True
    points = [(len(text), *time_text(engine, text, voice)) for text in CALIBRATION_TEXTS]
    known.put(kind, points)
    return CostModel.fit(points), False


class WorkerRuntime:
    """See the module docstring. Public methods are what the loop calls."""

    def __init__(
        self,
        engine: SpeechEngine,
        scheduler: Scheduler,
        shared: Shared,
        context: RequestContext,
        *,
        worker: str = "0",
    ) -> None:
        self.engine, self.scheduler, self.context = engine, scheduler, context
        self.board, self.counters = shared.board, shared.counters
        self.worker = worker
        self.pid = os.getpid()
        self.watch = ChunkWatch(shared.board, engine.interrupt, engine.reset)
        self._worst_wait_s = 0.0

    @classmethod
    def load(cls, settings: Settings, shared: Shared, device: str) -> WorkerRuntime:
        """Load the engine on `device`, measure it, and make the runtime (the worker's `setup`)."""
        started = time.monotonic()
        engine, threads = _load_engine(settings, device)
        catalogue = VoiceCatalogue.from_dir(ModelDir(settings.model_dir).voices)
        context = RequestContext.from_settings(settings, catalogue, installed_languages())
        if isinstance(engine, EmulatedEngine):
            cost, known = engine.costs(), False
        else:
            kind = f"{device} {engine.name} {threads} threads"
            cost, known = calibrate(engine, catalogue, shared.calibrations, kind)
        scheduler = Scheduler(
            cost,
            policy=settings.scheduler,
            max_lead_s=settings.max_lead_s,
            max_active=settings.max_streams_per_worker,
            batch=engine.max_batch,
        )
        runtime = cls(engine, scheduler, shared, context, worker=os.environ.get("LITSERVE_WORKER_ID", "0"))
        logger.info(
            "worker %s ready on %s (%s engine, %d threads) in %.1f s: %.2f audio s per s, %.3f s per chunk "
            "(%s); %s scheduler, chunks of %d+ characters, steps up to %.2f s of up to %d streams; streams "
            "%s",
            runtime.pid,
            device,
            engine.name,
            threads,
            time.monotonic() - started,
            cost.throughput(),
            cost.overhead_s,
            "as an earlier worker measured" if known else "measured",
            scheduler.policy,
            scheduler.min_chunk_chars,
            scheduler.max_step_s,
            scheduler.batch,
            scheduler.max_active or "as the schedule allows",
        )
        if settings.emulated:
            logger.warning(
                "worker %s runs the EMULATED engine %s: it sleeps and plays tones instead of speaking "
                "(for load tests only)",
                runtime.pid,
                engine.name,
            )
        return runtime

    # --- Requests ------------------------------------------------------------------------------------

    def parse(self, payload: dict[str, Any], *, live: bool = False) -> PlannedSpeech:
        """Validate and plan a request body (TTSError if it is bad; the front has checked it already); a
        live one's text comes later."""
        return parse_speech_request(payload, self.context, live=live)

    def open_stream(self, uid: str, reply_to: int, ticket: Ticket, speech: PlannedSpeech) -> Stream:
        """Start synthesizing an admitted request."""
        return Stream(
            uid,
            reply_to,
            ticket,
            speech,
            self.engine,
            arrived_s=time.monotonic(),
            max_live_chars=self.context.max_input_chars,
            max_pause_s=self.context.max_pause_s,
            max_audio_s=self.context.max_audio_s,
        )

    def step(self, stream: Stream, max_chars: int) -> Step:
        """Synthesize the stream's next chunk; Interrupted if its client leaves meanwhile."""
        with self.watch.chunk(stream.key):
            return stream.step(max_chars)

    def step_batch(
        self,
        jobs: list[tuple[Stream, RenderJob]],
        ready: Callable[[Stream, Step], None],
        prepare_s: float = 0.0,
    ) -> list[Step]:
        """Synthesize the chunks several streams' `prepare` asked for (`prepare_s` each) in one engine step,
        and make each one's frames, handing each to `ready` as soon as they are (its client need not wait
        while the others' are); Interrupted only if every one of their clients leaves meanwhile. The pass is
        learned once, for its longest member (a batched pass costs about what that one costs alone), and
        what each member adds (preparing, its frames, sending) apart: a step of 64 pays it 64 times."""
        started = time.perf_counter()
        steps: list[Step] = []
        with self.watch.chunk(*(stream.key for stream, _ in jobs)):
            outputs = self.engine.render_batch([job for _, job in jobs])
            rendered = time.perf_counter()
            for (stream, _), pieces in zip(jobs, outputs, strict=True):
                steps.append(stream.finish(pieces))
                ready(stream, steps[-1])
        compute_s = time.perf_counter() - started
        member_s = prepare_s + (compute_s - (rendered - started)) / len(steps)
        self.scheduler.cost.learn_member(member_s)
        compute_s += prepare_s * len(steps)
        self.counters.add("tts_batched_steps_total")
        self.counters.add("tts_batched_chunks_total", len(steps))
        longest = max(steps, key=lambda step: step.chars)
        for step in steps:
            step.costed = step is longest
            # The longest is learned as a step of its own (the pass and one member); riders are member_s each.
            step.compute_s = compute_s - (len(steps) - 1) * member_s
        return steps

    # --- The board -----------------------------------------------------------------------------------

    def poll(self, keys: list[str], take: list[str] | None = None) -> dict[str, StreamState]:
        """The board entries of `keys`, in one round trip; with the live text fed to those in `take`."""
        return self.board.poll(keys, take)

    def close_entry(self, key: str) -> None:
        """The request is over: free its place on the board."""
        self.board.close(key)

    # --- Counters ------------------------------------------------------------------------------------

    def count(self, name: str, amount: float = 1.0, **labels: object) -> None:
        self.counters.add(name, amount, **labels)

    def first_audio(self, waited_s: float) -> None:
        """A stream's first audio went out `waited_s` after its admission (bounded by the scheduler)."""
        if waited_s > self._worst_wait_s:
            self._worst_wait_s = waited_s
            self.counters.set("tts_first_chunk_wait_max_seconds", waited_s, worker=self.worker)

    def missed_deadline(self, late_s: float) -> None:
        """A player ran dry for `late_s` before this chunk's audio went out."""
        self.counters.add("tts_deadline_misses_total")
        self.counters.observe("tts_deadline_miss_seconds", [late_s])

    def learn(self, stream: Stream, step: Step) -> None:
        """Count a synthesized chunk and fold it into the cost model."""
        self.counters.add("tts_chunks_synthesized_total")
        if step.chars and step.costed:
            self.scheduler.cost.learn(step.chars, stream.view.speed, step.compute_s, step.audio_s)

    def completed(self, stream: Stream) -> None:
        self.counters.add("tts_requests_completed_total")
        self.counters.add("tts_audio_seconds_total", stream.progress.audio_seconds)

    def log_cancel(
        self, ticket: Ticket, request: SpeechRequest, progress: Progress, stage: str, reason: str
    ) -> None:
        """Count a cancelled request and say how much of it was synthesized, and skipped."""
        self.counters.add("tts_requests_cancelled_total", stage=stage)
        self.counters.add("tts_audio_seconds_total", progress.audio_seconds)
        total = len(request.input)
        skipped = max(0, total - progress.characters)
        logger.info(
            "request %s cancelled while %s: %d chunks (%.2f s of audio) synthesized, "
            "about %.1f s of audio skipped (%d of %d input characters); reason: %s",
            ticket.request_id,
            stage,
            progress.chunks,
            progress.audio_seconds,
            skipped / progress.characters_per_second(request.speed),
            skipped,
            total,
            reason,
        )

    def report(self, active: int, waiting: int, paused: int = 0) -> None:
        """Publish this worker's gauges: streams synthesizing, taken but not admitted, and paused for a
        reader that fell behind."""
        counters, worker = self.counters, self.worker
        counters.set("tts_streams", active, worker=worker, state="active")
        counters.set("tts_streams", waiting, worker=worker, state="waiting")
        counters.set("tts_streams", paused, worker=worker, state="paused")
        scheduler = self.scheduler
        capacity = scheduler.cost.throughput()
        counters.set("tts_worker_capacity", capacity, worker=worker, engine=self.engine.name)
        bound = scheduler.max_step_s + scheduler.cost.cost(scheduler.first_chunk_chars, 1.0)
        counters.set("tts_first_chunk_bound_seconds", bound, worker=worker)
        counters.set("tts_cost_error_factor", scheduler.cost.error_factor, worker=worker)


def _load_engine(settings: Settings, device: str) -> tuple[SpeechEngine, int]:
    """The engine `settings` ask for, and the threads it computes with."""
    spec = parse_emulated(settings.engine)
    if spec is not None:
        return EmulatedEngine(spec), 1  # no model, no torch: it only sleeps
    import torch

    from ..synth.engine import KokoroEngine

    threads = settings.torch_threads or max(1, available_cpus() // settings.workers_per_device)
    torch.set_num_threads(threads)
    model_engine = cast(ModelEngine, settings.engine)
    engine = KokoroEngine(
        settings.model_dir,
        device,
        engine=model_engine,
        threads=threads,
        trim_silence=settings.trim_silence,
        batch=settings.batch or (BATCH_ON_GPU if device.startswith("cuda") else 1),
    )
    return engine, threads
