"""SpeechAPI: the LitServe API that runs in each inference worker. Glue between LitServe and the engine."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import litserve as ls
import numpy as np
import numpy.typing as npt

from .audio import SAMPLE_RATE, open_encoder
from .errors import TTSError
from .frames import TICKET_KEY, Ticket
from .schemas import RequestContext, SpeechRequest, parse_speech_request
from .settings import Settings
from .voices import VoiceBlend, VoiceCatalogue, installed_languages

__all__ = ["SPEECH_PATH", "SpeechAPI", "SpeechJob"]

logger = logging.getLogger(__name__)

SPEECH_PATH = "/v1/audio/speech"


@dataclass(frozen=True)
class SpeechJob:
    """A validated request, ready for the engine."""

    ticket: Ticket
    request: SpeechRequest
    voice: VoiceBlend
    lang_code: str


class SpeechAPI(ls.LitAPI):
    """Decode a request into a job, synthesize it chunk by chunk, encode each chunk as it comes.

    The constructor only stores settings (it is pickled into every worker); the model is loaded
    in `setup`, inside the worker process.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(stream=True, api_path=SPEECH_PATH)
        self.settings = settings

    def setup(self, device: str) -> None:
        import torch

        from .engine import Engine

        # Ctrl-C reaches the whole process group; the main process stops the workers in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

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
    def decode_request(self, request, context: dict[str, Any]) -> SpeechJob | None:  # type: ignore[no-untyped-def]
        ticket = Ticket.from_dict(request.pop(TICKET_KEY, None))
        context["ticket"] = ticket
        try:
            speech = parse_speech_request(request, self.context)
        except TTSError as exc:
            # The front validated with the same schema, so this is rare (e.g. a voice file removed).
            context["error"] = exc
            return None
        job = SpeechJob(ticket, speech, speech.blend(self.catalogue), speech.language(self.catalogue))
        context["job"] = job
        return job

    def predict(self, job: SpeechJob | None, context: dict[str, Any]) -> Iterator[npt.NDArray[np.float32]]:
        if job is None:
            return
        request = job.request
        for chunk in self.engine.synthesize(
            request.input, job.voice, speed=request.speed, lang_code=job.lang_code
        ):
            yield chunk.audio

    def encode_response(
        self, outputs: Iterator[npt.NDArray[np.float32]], context: dict[str, Any]
    ) -> Iterator[bytes]:
        ticket: Ticket = context["ticket"]
        job: SpeechJob | None = context.get("job")
        if job is None:
            yield ticket.error_frame(context["error"])
            return
        encoder = open_encoder(job.request.response_format, streaming=job.request.stream)
        samples = 0
        try:
            for audio in outputs:
                samples += len(audio)
                data = encoder.write(audio)
                if data:
                    yield data
            tail = encoder.finish()
            if tail:
                yield tail
            yield ticket.end_frame(audio_seconds=samples / SAMPLE_RATE)
        except TTSError as exc:
            yield ticket.error_frame(exc)
        except Exception:
            logger.exception("request %s failed during synthesis", ticket.request_id)
            yield ticket.error_frame(TTSError(f"speech synthesis failed (request id {ticket.request_id})"))
        finally:
            encoder.close()
            close = getattr(outputs, "close", None)
            if close is not None:
                close()
