"""SpeechAPI: the LitServe API that runs in each inference worker. Glue between LitServe and the engine."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import litserve as ls

from ..errors import TTSError
from ..ipc.frames import TICKET_KEY, Ticket
from ..ipc.manager import Shared
from ..logs import configure_logging
from ..schemas import RequestContext, parse_speech_request
from ..settings import Settings
from ..voices import VoiceCatalogue, installed_languages
from .encoders import open_encoder
from .job import Job, Stage

if TYPE_CHECKING:  # the engine imports kokoro, which only the workers may load
    from .engine import SpeechChunk

__all__ = ["SPEECH_PATH", "SpeechAPI"]

logger = logging.getLogger(__name__)

SPEECH_PATH = "/v1/audio/speech"
# LitServe hands every hook the same per-request dict; all our state lives in one typed Job under this key.
_JOB = "job"


class SpeechAPI(ls.LitAPI):
    """Decode a request into a job, synthesize it chunk by chunk, encode each chunk as it comes.

    Before the job and before every chunk it asks the cancel board whether the client is still
    there, and stops if not. The constructor only stores settings and proxies (it is pickled into
    every worker); the model is loaded in `setup`, inside the worker process.
    """

    def __init__(self, settings: Settings, shared: Shared) -> None:
        super().__init__(stream=True, api_path=SPEECH_PATH)
        self.settings = settings
        self.shared = shared

    def setup(self, device: str) -> None:
        import torch

        from .engine import Engine

        # Ctrl-C reaches the whole process group; the main process stops the workers in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        configure_logging(self.settings.log_level)
        threads = self.settings.torch_threads or max(
            1, (os.cpu_count() or 1) // self.settings.workers_per_device
        )
        torch.set_num_threads(threads)
        started = time.monotonic()
        self.engine = Engine(self.settings.model_dir, device)
        self.catalogue = VoiceCatalogue.from_dir(self.engine.files.voices)
        self.context = RequestContext(
            catalogue=self.catalogue,
            max_input_chars=self.settings.max_input_chars,
            languages=installed_languages(),
        )
        warm_voice = "af_heart" if "af_heart" in self.catalogue else next(iter(self.catalogue.voices))
        self.engine.warm_up(self.catalogue.resolve(warm_voice))
        logger.info(
            "worker %s ready on %s (%d torch threads) in %.1f s",
            os.getpid(),
            device,
            threads,
            time.monotonic() - started,
        )

    # `request` stays unannotated: LitServe turns an annotation into the FastAPI body type.
    def decode_request(self, request, context: dict[str, Any]) -> Job:  # type: ignore[no-untyped-def]
        job = Job(Ticket.from_dict(request.pop(TICKET_KEY, None)))
        context[_JOB] = job
        self.shared.counters.add("tts_requests_started_total")
        try:
            job.speech = parse_speech_request(request, self.context)
        except TTSError as exc:
            # The front validated with the same schema, so this is rare (e.g. a voice file removed).
            job.error = exc
        return job

    def predict(self, job: Job, context: dict[str, Any]) -> Generator[SpeechChunk, None, None]:
        if job.speech is None:
            return
        speech, request = job.speech, job.request
        chunks = self.engine.speak(
            request.input,
            speech.chunks,
            speech.voice,
            speed=request.speed,
            lang_code=speech.lang_code,
            seed=request.seed,
        )
        stage: Stage = "queued"
        try:
            while not self._cancelled(job, stage):
                chunk = next(chunks, None)
                if chunk is None:
                    return
                self.shared.counters.add("tts_chunks_synthesized_total")
                yield chunk
                stage = "streaming"
        finally:
            chunks.close()

    def _cancelled(self, job: Job, stage: Stage) -> bool:
        if not self.shared.board.is_cancelled(job.ticket.key):
            return False
        job.cancelled_while = stage
        return True

    def encode_response(self, outputs: Iterator[SpeechChunk], context: dict[str, Any]) -> Iterator[bytes]:
        job: Job = context[_JOB]
        try:
            if job.error is not None:
                self.shared.counters.add("tts_requests_failed_total")
                yield job.ticket.error_frame(job.error)
            else:
                yield from self._encode(job, outputs)
        finally:
            self.shared.board.close(job.ticket.key)

    def _encode(self, job: Job, outputs: Iterator[SpeechChunk]) -> Iterator[bytes]:
        ticket, request, progress = job.ticket, job.request, job.progress
        counters = self.shared.counters
        encoder = open_encoder(request.response_format, streaming=request.stream)
        counters.add("tts_open_encoders")
        try:
            wants_words = request.stream and request.stream_format != "audio"
            for chunk in outputs:
                progress.add(chunk)
                data = encoder.write(chunk.audio)
                if data:
                    yield ticket.audio_frame(data)
                if wants_words and chunk.words:
                    yield ticket.words_frame([w.to_dict() for w in chunk.words])
            if job.cancelled_while is not None:
                self._log_cancel(job, job.cancelled_while)
                return
            tail = encoder.finish()
            if tail:
                yield ticket.audio_frame(tail)
            counters.add("tts_requests_completed_total")
            counters.add("tts_audio_seconds_total", progress.audio_seconds)
            yield ticket.end_frame(audio_seconds=progress.audio_seconds, usage=progress.usage())
        except TTSError as exc:
            counters.add("tts_requests_failed_total")
            yield ticket.error_frame(exc)
        except Exception:
            logger.exception("request %s failed during synthesis", ticket.request_id)
            counters.add("tts_requests_failed_total")
            yield ticket.error_frame(TTSError(f"speech synthesis failed (request id {ticket.request_id})"))
        finally:
            encoder.close()
            counters.add("tts_open_encoders", -1)
            close = getattr(outputs, "close", None)
            if close is not None:
                close()

    def _log_cancel(self, job: Job, stage: Stage) -> None:
        progress = job.progress
        self.shared.counters.add("tts_requests_cancelled_total", stage=stage)
        self.shared.counters.add("tts_audio_seconds_total", progress.audio_seconds)
        total = len(job.request.input)
        skipped = max(0, total - progress.characters)
        logger.info(
            "request %s cancelled while %s: %d chunks (%.2f s of audio) synthesized, "
            "about %.1f s of audio skipped (%d of %d input characters)",
            job.ticket.request_id,
            stage,
            progress.chunks,
            progress.audio_seconds,
            skipped / progress.characters_per_second(job.request.speed),
            skipped,
            total,
        )
