"""A load-testing engine: behaves like a worker that feeds N real-time listeners, without the model.

Each piece takes `overhead_s + audio_s / N` of wall time, asleep rather than computing, and is real audio
of the planned length: one tone per word with Kokoro-like edge silence, and timed tokens, so that the
whole serving path (front, board, relay, scheduler, seams, timestamps, encoders) runs as it does for the
model. With a batch size B (`emulated:N:OVERHEAD_S:B`) one step may carry the chunks of up to B streams
and costs `overhead_s` plus its longest member's audio ÷ N: a GPU's shape, where a batched pass costs
about what its longest member costs alone. `--engine emulated:N[:overhead_s[:B]]` selects it; it is never
the default, and the worker's log line and `/health` name it. Useful for load-testing a deployment
(nginx, Kubernetes), or the serving path at a GPU's scale, without burning CPU.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from ..formats import SAMPLE_RATE
from ..settings import EmulatedSpec
from ..text.planning import Growth
from ..voices import VoiceBlend
from .costs import CostModel
from .speech import Chunks, Interrupted, RawPiece, RenderJob, Utterance

__all__ = ["EmulatedEngine"]

_TOKEN = re.compile(r"\w+|[^\w\s]+")
LEAD_S = 0.3  # Kokoro pads a piece with about this much silence before the speech...
TAIL_S = 0.3  # ...and after it
SECONDS_PER_LETTER = 0.06  # about 15 characters per second of speech at speed 1, like Kokoro
WORD_S = 0.05
PUNCTUATION_S = {",": 0.15, ";": 0.2, ":": 0.2, ".": 0.3, "!": 0.3, "?": 0.3}
AMPLITUDE = 0.3


@dataclass
class _Token:
    """What misaki's MToken provides to the timestamps: text, whitespace after it, times in the piece."""

    text: str
    whitespace: str
    start_ts: float | None = None
    end_ts: float | None = None


class EmulatedEngine:
    """See the module docstring. Same contract as KokoroEngine (synth/speech.py's SpeechEngine)."""

    def __init__(self, spec: EmulatedSpec) -> None:
        self.spec = spec
        self._stop = threading.Event()

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def max_batch(self) -> int:
        """The most streams' chunks one step carries."""
        return self.spec.batch

    def costs(self) -> CostModel:
        """What its pieces cost, known rather than measured: the margins are made, and slept for, too."""
        audio_s_per_char = SECONDS_PER_LETTER * 1.15  # letters, plus the spaces and word gaps around them
        return CostModel(
            compute_s_per_char=audio_s_per_char / self.spec.listeners,
            audio_s_per_char=audio_s_per_char,
            overhead_s=self.spec.overhead_s + (LEAD_S + TAIL_S) / self.spec.listeners,
        )

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
        pitch = 110.0 + zlib.crc32(voice.key.encode()) % 120  # each voice its own pitch

        def render(chunk_text: str) -> Iterator[RawPiece]:
            yield from self.render_batch([RenderJob(chunk_text, render, (speed, pitch))])[0]

        return Utterance(chunks, render, speed=speed, growth=growth, params=(speed, pitch))

    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Iterator[RawPiece]]:
        """The chunks of several utterances in one step: it costs what its longest member costs alone."""
        started = time.perf_counter()
        pieces = [_piece(job.text, *cast(tuple[float, float], job.params)) for job in jobs]
        audio_s = max(len(piece.audio) for piece in pieces) / SAMPLE_RATE
        self._sleep(self.spec.overhead_s + audio_s / self.spec.listeners - (time.perf_counter() - started))
        return [iter([piece]) for piece in pieces]

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(max(0.0, seconds)):
            raise Interrupted

    def interrupt(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        self._stop.clear()


def _piece(text: str, speed: float, pitch: float) -> RawPiece:
    """A tone for each word, silence for punctuation, Kokoro-like margins; tokens timed in the piece."""
    tokens: list[_Token] = []
    spans: list[tuple[int, int, float]] = []  # sample range of each word, and its pitch
    cursor = LEAD_S
    for match in _TOKEN.finditer(text):
        word = match.group()
        whitespace = " " if match.end() < len(text) and text[match.end()].isspace() else ""
        if word[0].isalnum() or word[0] == "_":
            seconds = (WORD_S + SECONDS_PER_LETTER * len(word)) / speed
            spans.append((_samples(cursor), _samples(cursor + seconds), pitch * (1 + 0.05 * (len(word) % 4))))
        else:
            seconds = PUNCTUATION_S.get(word[-1], 0.05) / speed
        tokens.append(_Token(word, whitespace, cursor, cursor + seconds))
        cursor += seconds
    audio = np.zeros(_samples(cursor + TAIL_S), dtype=np.float32)
    for start, end, frequency in spans:
        t = np.arange(end - start, dtype=np.float32) / SAMPLE_RATE
        envelope = np.sin(np.pi * np.arange(end - start, dtype=np.float32) / max(1, end - start))
        tone = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(4 * np.pi * frequency * t)
        audio[start:end] = (AMPLITUDE * envelope * tone).astype(np.float32)
    frames = round(len(audio) / SAMPLE_RATE * 40)  # Kokoro's 25 ms duration steps
    return RawPiece(audio, text, text, frames, tokens)


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)
