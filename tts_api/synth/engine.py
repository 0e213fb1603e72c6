"""The Kokoro engine: one KModel, G2P pipelines per language, voices; renders a chunk's text into audio."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

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
    ) -> None:
        self.files = ModelDir(Path(model_dir)).require()
        self.device = device
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
        """The most streams' chunks one step carries: one (each chunk alone)."""
        return 1

    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Iterator[RawPiece]]:
        return render_each(jobs)

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
        pipeline = self.pipeline(lang_code)
        pack = self.voice(voice)
        rng = self.model.generator(seed if seed is not None else _fresh_seed())

        def render(chunk_text: str) -> Iterator[RawPiece]:
            # G2P only (no model in the pipeline): the model runs here, with this request's generator.
            for result in pipeline(chunk_text, split_pattern=None):
                if not result.phonemes:
                    continue
                output = self.model(result.phonemes, pack[len(result.phonemes) - 1], speed, rng)
                if result.tokens:
                    KPipeline.join_timestamps(result.tokens, output.pred_dur)
                audio = output.audio.detach().cpu().numpy().astype(np.float32, copy=False)
                frames = int(output.pred_dur.sum())
                yield RawPiece(audio, result.graphemes, result.phonemes, frames, result.tokens or ())

        return Utterance(chunks, render, speed=speed, growth=growth)

    def interrupt(self) -> None:
        """Stop the synthesis in flight (from another thread): the utterance raises Interrupted."""
        self.model.interrupt()

    def reset(self) -> None:
        """Let the next synthesis run after an interrupt."""
        self.model.reset()
