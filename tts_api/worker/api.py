"""SpeechAPI: the LitServe API of the inference workers. Loads the model; its loop serves the streams.

LitServe pickles the API (with its loop) into every worker and calls `setup` there. The constructor only
stores settings and proxies; the model, the engine and the scheduler are made in `setup`. Requests never
go through LitServe's decode/predict/encode hooks: `SpeechLoop` (loop.py) takes them from the queue and
runs many streams at once, calling back into this object for what needs the model or the counters.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import litserve as ls

from ..ipc.frames import Ticket
from ..ipc.manager import Shared
from ..logs import configure_logging
from ..schemas import PlannedSpeech, RequestContext, SpeechRequest
from ..settings import Settings
from ..voices import VoiceCatalogue, installed_languages
from .encoders import Encoder
from .loop import SpeechLoop
from .progress import Progress
from .scheduler import CostModel, Scheduler
from .stream import Step, Stream
from .watch import ChunkWatch

if TYPE_CHECKING:  # the engine imports kokoro, which only the workers may load
    from .engine import Engine

__all__ = ["SPEECH_PATH", "SpeechAPI"]

logger = logging.getLogger(__name__)

SPEECH_PATH = "/v1/audio/speech"
# Spoken at start-up: warms the model and measures this worker's speed (about 5 s of audio).
CALIBRATION_TEXT = (
    "Hello there. This sentence is synthesized once at start-up, to measure how fast this worker speaks."
)
CALIBRATION_SHORT = "Hello there, good morning."
MAX_ACTIVE_CEILING = 16


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


class SpeechAPI(ls.LitAPI):
    """See the module docstring. Public methods are what `SpeechLoop` calls."""

    def __init__(self, settings: Settings, shared: Shared) -> None:
        super().__init__(stream=True, api_path=SPEECH_PATH, loop=SpeechLoop())
        self.settings = settings
        self.shared = shared

    def setup(self, device: str) -> None:
        import torch

        from .engine import Engine

        # Ctrl-C reaches the whole process group; the main process stops the workers in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        configure_logging(self.settings.log_level)
        threads = self.settings.torch_threads or max(1, available_cpus() // self.settings.workers_per_device)
        torch.set_num_threads(threads)
        started = time.monotonic()
        self.engine: Engine = Engine(
            self.settings.model_dir, device, engine=self.settings.engine, threads=threads
        )
        self.watch = ChunkWatch(self.shared.board, self.engine.interrupt, self.engine.reset)
        self.catalogue = VoiceCatalogue.from_dir(self.engine.files.voices)
        self.context = RequestContext(
            catalogue=self.catalogue,
            max_input_chars=self.settings.max_input_chars,
            languages=installed_languages(),
        )
        self.scheduler = self._calibrate()
        self.worker = os.environ.get("LITSERVE_WORKER_ID", "0")
        logger.info(
            "worker %s ready on %s (%s engine, %d threads) in %.1f s: %.2f audio s per s, %d streams (%s), "
            "%.2f s per chunk",
            os.getpid(),
            device,
            self.engine.engine,
            threads,
            time.monotonic() - started,
            self.scheduler.cost.capacity,
            self.scheduler.max_active,
            self.scheduler.policy,
            self.scheduler.cost.overhead_s,
        )

    def _calibrate(self) -> Scheduler:
        """Warm the model up and time it on a short and a long chunk: the cost model the scheduler starts
        from (a fixed cost per chunk, and compute and audio per character)."""
        warm_voice = "af_heart" if "af_heart" in self.catalogue else next(iter(self.catalogue.voices))
        voice = self.catalogue.resolve(warm_voice)
        self.engine.warm_up(voice)
        (short_s, _), (long_s, audio_s) = (
            self.engine.time_chunk(text, voice) for text in (CALIBRATION_SHORT, CALIBRATION_TEXT)
        )
        short, long = len(CALIBRATION_SHORT), len(CALIBRATION_TEXT)
        overhead = min(max(0.0, (short_s * long - long_s * short) / (long - short)), short_s)
        cost = CostModel(
            compute_s_per_char=max(long_s - overhead, 1e-3) / long,
            audio_s_per_char=audio_s / long,
            overhead_s=overhead,
        )
        settings = self.settings
        # As many streams as the worker can feed in real time (measured: a third stream admitted on the
        # schedule simulation's word stuttered too often); the admission test decides within that.
        max_active = settings.max_streams_per_worker or min(MAX_ACTIVE_CEILING, max(1, int(cost.capacity)))
        return Scheduler(
            cost,
            policy=settings.scheduler,
            max_lead_s=settings.max_lead_s,
            max_active=1 if settings.scheduler == "fifo" else max_active,
        )

    # --- What the loop calls ------------------------------------------------------------------------

    def open_stream(self, uid: str, reply_to: int, ticket: Ticket, speech: PlannedSpeech) -> Stream:
        """Start synthesizing an admitted request (opens its encoder)."""
        stream = Stream(
            uid,
            reply_to,
            ticket,
            speech,
            self.engine,
            arrived_s=time.monotonic(),
        )
        return stream

    def learn(self, stream: Stream, step: Step) -> None:
        """Count a synthesized chunk and fold it into the cost model."""
        self.shared.counters.add("tts_chunks_synthesized_total")
        if step.chars:
            self.scheduler.cost.learn(step.chars, stream.view.speed, step.compute_s, step.audio_s)

    def completed(self, stream: Stream) -> None:
        self.shared.counters.add("tts_requests_completed_total")
        self.shared.counters.add("tts_audio_seconds_total", stream.progress.audio_seconds)

    def log_cancel(
        self, ticket: Ticket, request: SpeechRequest, progress: Progress, stage: str, reason: str
    ) -> None:
        """Count a cancelled request and say how much of it was synthesized, and skipped."""
        self.shared.counters.add("tts_requests_cancelled_total", stage=stage)
        self.shared.counters.add("tts_audio_seconds_total", progress.audio_seconds)
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

    def report(self, active: int, waiting: int) -> None:
        """Publish this worker's gauges."""
        counters, worker = self.shared.counters, self.worker
        counters.set("tts_streams", active, worker=worker, state="active")
        counters.set("tts_streams", waiting, worker=worker, state="waiting")
        counters.set(
            "tts_worker_capacity", self.scheduler.cost.capacity, worker=worker, engine=self.engine.engine
        )
        counters.set("tts_open_encoders", Encoder.live(), worker=worker)
