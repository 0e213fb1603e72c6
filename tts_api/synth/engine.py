"""The Kokoro engine: one KModel, G2P pipelines per language, voices; renders a chunk's text into audio."""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from kokoro import KPipeline

from ..model.g2p import g2p_pipeline
from ..model.kmodel import load_model
from ..model.layout import ModelDir
from ..settings import ModelEngine
from ..text.planning import Growth
from ..voices import VoiceBlend
from .speech import Chunks, RawPiece, RenderJob, Utterance, render_each
from .vocoders import EDGE_TRIM, SpeechModel, choose_vocoder

__all__ = ["KokoroEngine"]

VOICE_CACHE_SIZE = 64


def _fresh_seed() -> int:
    """A seed nobody chose: an unseeded request's noise is new every time, in every worker."""
    return int.from_bytes(os.urandom(8), "little") >> 1


@dataclass(frozen=True)
class _Params:
    """What synthesizing one utterance's chunk takes: its G2P, voice, speed and random generator."""

    pipeline: KPipeline
    pack: torch.Tensor
    speed: float
    rng: torch.Generator


def _raw(result: Any, output: Any) -> RawPiece:
    """A G2P result and the model's output for it as a raw piece, its tokens timed."""
    if result.tokens:
        KPipeline.join_timestamps(result.tokens, output.pred_dur)
    audio = output.audio.detach().cpu().numpy().astype(np.float32, copy=False)
    return RawPiece(audio, result.graphemes, result.phonemes, int(output.pred_dur.sum()), result.tokens or ())


class KokoroEngine:
    """Synthesizes speech with one KModel shared by one G2P pipeline per language.

    Responsibilities: load the model and voices from a model directory, build G2P pipelines
    lazily (English up front), mix and cache voice blends, render chunks with a request's own
    random generator (explicit: seeds reproduce audio however requests interleave). `trim_silence`
    keeps the decoder from making the edge silence the seams would cut (off only to compare).
    """

    def __init__(
        self,
        model_dir: Path | str,
        device: str,
        *,
        engine: ModelEngine = "auto",
        threads: int = 1,
        trim_silence: bool = True,
        preload_languages: str = "a",
        batch: int = 1,
    ) -> None:
        self.files = ModelDir(Path(model_dir)).require()
        self.device = device
        self.batch = batch
        kmodel = load_model(self.files, device)
        vocoder = choose_vocoder(engine, kmodel, self.files, threads)
        self.model = SpeechModel(kmodel, vocoder, EDGE_TRIM if trim_silence else None)
        self._pipelines: dict[str, KPipeline] = {}
        self._voices: OrderedDict[str, torch.Tensor] = OrderedDict()
        for lang_code in preload_languages:
            self.pipeline(lang_code)

    @property
    def name(self) -> str:
        """The decoder engine in use: `onnx` or `torch`."""
        return self.model.vocoder.name

    @property
    def max_batch(self) -> int:
        """The most streams' chunks one step carries."""
        return self.batch

    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Iterator[RawPiece]]:
        """Each job's first piece synthesized in one batched pass (SpeechModel.batch); a chunk the model
        splits past its phoneme limit makes its later pieces on its own."""
        if len(jobs) == 1 or self.batch == 1:
            return render_each(jobs)
        firsts: list[tuple[Any, _Params]] = []
        rests: list[Iterator[Any]] = []
        for job in jobs:
            params = cast(_Params, job.params)
            results = (r for r in params.pipeline(job.text, split_pattern=None) if r.phonemes)
            firsts.append((next(results, None), params))
            rests.append(results)
        spoken = [(result, params) for result, params in firsts if result is not None]
        outputs = iter(
            self.model.batch([(r.phonemes, p.pack[len(r.phonemes) - 1], p.speed, p.rng) for r, p in spoken])
        )
        pieces: list[Iterator[RawPiece]] = []
        for (result, params), rest in zip(firsts, rests, strict=True):
            first = [] if result is None else [_raw(result, next(outputs))]
            pieces.append(itertools.chain(first, (self._piece(r, params) for r in rest)))
        return pieces

    def pipeline(self, lang_code: str) -> KPipeline:
        """The G2P pipeline for a language, created on first use."""
        if lang_code not in self._pipelines:
            self._pipelines[lang_code] = g2p_pipeline(lang_code)
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

    def utterance(
        self,
        chunks: Chunks,
        voice: VoiceBlend,
        *,
        speed: float,
        lang_code: str,
        seed: int | None,
        growth: Growth | None = None,
    ) -> Utterance:
        """The text `chunks` cuts, in `voice`, to be spoken chunk by chunk (see Utterance).

        Kokoro's vocoder draws random noise; a `seed` makes it reproducible.
        """
        params = _Params(
            self.pipeline(lang_code),
            self.voice(voice),
            speed,
            self.model.generator(seed if seed is not None else _fresh_seed()),
        )

        def render(chunk_text: str) -> Iterator[RawPiece]:
            # G2P only (no model in the pipeline): the model runs here, with this request's generator.
            for result in params.pipeline(chunk_text, split_pattern=None):
                if result.phonemes:
                    yield self._piece(result, params)

        return Utterance(chunks, render, speed=speed, growth=growth, params=params)

    def _piece(self, result: Any, params: _Params) -> RawPiece:
        """Synthesize one G2P result alone."""
        return _raw(
            result,
            self.model(result.phonemes, params.pack[len(result.phonemes) - 1], params.speed, params.rng),
        )

    def interrupt(self) -> None:
        """Stop the synthesis in flight (from another thread): the utterance raises Interrupted."""
        self.model.interrupt()

    def reset(self) -> None:
        """Let the next synthesis run after an interrupt."""
        self.model.reset()
