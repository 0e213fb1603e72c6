"""One request's speech, chunk by chunk, whatever engine makes the sound: the contract every engine meets.

An engine renders a chunk's text into raw pieces (audio with the model's own edge silence, the phonemes,
tokens timed within the piece). `Utterance` does the rest the same way for every engine: it cuts the
next chunk from the request's plan within the budget its caller passes, joins the pieces with the seams'
rules (trimmed edges, fades, the planned gaps) and maps word timestamps back to the user's text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..formats import SAMPLE_RATE
from ..text.planning import GAP_AFTER_S, MAX_CHUNK_CHARS, Chunk, ChunkCursor, Growth
from ..text.segmentation import segment
from ..voices import ENGLISH, VoiceBlend
from .seams import shape_piece, silence
from .timestamps import TimedToken, WordTiming, word_timings

__all__ = [
    "Chunks",
    "Interrupted",
    "RawPiece",
    "Render",
    "RenderJob",
    "SpeechChunk",
    "SpeechEngine",
    "Utterance",
    "render_each",
    "speak_all",
    "time_text",
]

Audio = npt.NDArray[np.float32]

# Silence (a pause tag, or several in a row) goes out in pieces of at most this long, one per `next`: like
# speech it passes the scheduler and the lead cap piece by piece, and no piece holds much memory.
SILENCE_PIECE_S = 1.0


class Interrupted(Exception):
    """Raised inside a synthesis that the engine's `interrupt()` stopped (its request was cancelled)."""


@dataclass(frozen=True)
class RawPiece:
    """What one model call made: audio with the model's own edge silence, and what it says."""

    audio: Audio
    graphemes: str
    phonemes: str
    frames: int  # model duration steps (25 ms each at speed 1)
    tokens: Sequence[TimedToken] = ()  # times from the start of `audio` (English only)


@dataclass(frozen=True)
class SpeechChunk:
    """One piece of the response: 24 kHz mono float32 audio, ready to append, and what it says."""

    audio: Audio
    graphemes: str
    phonemes: str
    frames: int
    words: tuple[WordTiming, ...] = ()  # English only; times from the start of the response


# A chunk's text -> its pieces (more than one when the model splits a chunk past its phoneme limit).
Render = Callable[[str], Iterator[RawPiece]]


@dataclass(frozen=True)
class RenderJob:
    """A chunk an utterance needs synthesized: its text, the utterance's own renderer, and what an engine
    that batches needs to synthesize it beside other utterances' chunks (`params`, engine-specific)."""

    text: str
    render: Render
    params: object = None


class Chunks(Protocol):
    """Where an utterance's chunks come from: a whole text's plan (text/planning.py's ChunkCursor), or a
    text that grows while it is spoken (text/live.py's LiveText). Chunk spans index into `text`."""

    @property
    def text(self) -> str: ...

    @property
    def remaining_chars(self) -> int: ...

    @property
    def done(self) -> bool: ...

    def next(self, budget: int, *, reach: int = 0, min_cost: int = 0) -> Chunk | None: ...


class Utterance:
    """See the module docstring. `next(max_chars)` gives the next piece; None when there is nothing to say
    now: all is said (`done`), or a growing text has nothing sure yet.

    `max_chars` is the caller's budget for the next chunk (phoneme-weighted characters); `budget` is what
    a lone stream's growing plan would take. Pieces of one chunk come out one per call.
    """

    def __init__(
        self,
        chunks: Chunks,
        render: Render,
        *,
        speed: float,
        growth: Growth | None = None,
        on_close: Callable[[], None] | None = None,
        params: object = None,
    ) -> None:
        self.speed = speed
        self._render = render
        self._params = params
        self._cursor = chunks
        self._growth = growth or Growth()
        self._on_close = on_close
        self._chunk: Chunk | None = None
        self._pieces: Iterator[RawPiece] | None = None
        self._elapsed = 0  # samples already given out
        self._gap_s = 0.0  # silence owed before the next piece
        self._silence_left = 0  # samples of a pause still to give out

    @property
    def budget(self) -> int:
        """The next chunk's budget in a lone stream's plan (small first, then growing)."""
        return self._growth.budget

    @property
    def text(self) -> str:
        """The text spoken (word timestamps index into it)."""
        return self._cursor.text

    @property
    def remaining_chars(self) -> int:
        """Characters of text not yet cut into chunks."""
        return self._cursor.remaining_chars

    @property
    def done(self) -> bool:
        """Everything is said: no piece or silence in progress, and no chunk to come."""
        return self._pieces is None and not self._silence_left and self._cursor.done

    def restart(self) -> None:
        """Plan the next chunks as a newcomer's: small first (its player ran dry)."""
        self._growth = Growth(self._growth.first, self._growth.cap)

    def next(self, max_chars: int) -> SpeechChunk | None:
        """Synthesize the next piece, cutting a new chunk of at most `max_chars` if one is needed."""
        work = self.prepare(max_chars)
        return self.rendered(work.render(work.text)) if isinstance(work, RenderJob) else work

    def prepare(self, max_chars: int) -> SpeechChunk | RenderJob | None:
        """The next piece if it needs no synthesis (a pause, the next piece of a split chunk), else the chunk
        to synthesize, cut at most `max_chars` long, for `rendered` (an engine may batch it with others)."""
        if self._silence_left:
            return self._silence()
        while True:
            if self._pieces is not None and self._chunk is not None:
                raw = next(self._pieces, None)
                if raw is not None:
                    return self._shape(raw, self._chunk)
                self._pieces = None
                self._gap_s = self._chunk.gap_after_s / self.speed
            growth = self._growth
            chunk = self._cursor.next(max(1, max_chars), reach=growth.reach, min_cost=growth.min_cost)
            if chunk is None:
                return None
            growth.spoke(chunk)
            if chunk.is_pause:
                self._silence_left = round((self._gap_s + chunk.pause_s) * SAMPLE_RATE)
                self._gap_s = 0.0
                if self._silence_left:
                    return self._silence()
                continue
            self._chunk = chunk
            return RenderJob(chunk.text, self._render, self._params)

    def rendered(self, pieces: Iterator[RawPiece]) -> SpeechChunk:
        """The first piece of the chunk `prepare` asked for, from what the engine made of it."""
        chunk = self._chunk
        if chunk is None:
            raise RuntimeError("rendered() without a chunk from prepare()")
        self._pieces = pieces
        raw = next(pieces, None)
        if raw is None:  # the model made nothing of it: go on after the chunk's gap
            self._pieces = None
            self._gap_s = chunk.gap_after_s / self.speed
            return SpeechChunk(audio=silence(0.0), graphemes="", phonemes="", frames=0)
        return self._shape(raw, chunk)

    def _silence(self) -> SpeechChunk:
        """The next piece of a pause (at most SILENCE_PIECE_S)."""
        samples = min(self._silence_left, round(SILENCE_PIECE_S * SAMPLE_RATE))
        self._silence_left -= samples
        self._elapsed += samples
        return SpeechChunk(audio=silence(samples / SAMPLE_RATE), graphemes="", phonemes="", frames=0)

    def _shape(self, raw: RawPiece, chunk: Chunk) -> SpeechChunk:
        shaped = shape_piece(raw.audio, gap_before_s=self._gap_s)
        start_s = self._elapsed / SAMPLE_RATE
        end_s = (self._elapsed + len(shaped.audio)) / SAMPLE_RATE
        words = word_timings(
            raw.tokens, chunk, self.text, shift_s=start_s + shaped.shift_s, start_s=start_s, end_s=end_s
        )
        self._elapsed += len(shaped.audio)
        # Only when the model split a chunk past its limit: the next piece continues the same clause.
        self._gap_s = GAP_AFTER_S["clause"] / self.speed
        return SpeechChunk(shaped.audio, raw.graphemes, raw.phonemes, raw.frames, tuple(words))

    def close(self) -> None:
        """Release the piece in progress (and what the engine holds for this utterance)."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        self._pieces = None
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


class SpeechEngine(Protocol):
    """What makes sound in a worker: the Kokoro model (engine.py) or the load-testing stand-in (emulated.py).

    `render_batch` synthesizes the chunks of up to `max_batch` utterances in one step (`render_each` for an
    engine that runs them one by one); each iterator gives that chunk's pieces. `interrupt` (from another
    thread) makes the piece in flight raise `Interrupted`; `reset` lets the next one run.
    """

    @property
    def name(self) -> str: ...

    @property
    def max_batch(self) -> int: ...

    def render_batch(self, jobs: Sequence[RenderJob]) -> list[Iterator[RawPiece]]: ...

    def utterance(
        self,
        chunks: Chunks,
        voice: VoiceBlend,
        *,
        speed: float,
        lang_code: str,
        seed: int | None,
        growth: Growth | None = None,
    ) -> Utterance: ...

    def interrupt(self) -> None: ...

    def reset(self) -> None: ...


def render_each(jobs: Sequence[RenderJob]) -> list[Iterator[RawPiece]]:
    """Each job's chunk on its own, for engines that do not batch: its pieces are made as they are read."""
    return [job.render(job.text) for job in jobs]


def speak_all(
    engine: SpeechEngine,
    text: str,
    voice: VoiceBlend,
    *,
    speed: float = 1.0,
    lang_code: str | None = None,
    seed: int | None = None,
    normalize: bool = True,
    growth: Growth | None = None,
) -> Iterator[SpeechChunk]:
    """Yield the whole speech of `text` with a lone stream's plan (short first chunk, then growing)."""
    lang = lang_code or voice.lang_code
    script = segment(text, normalize=normalize and lang in ENGLISH)
    utterance = engine.utterance(
        ChunkCursor(script), voice, speed=speed, lang_code=lang, seed=seed, growth=growth
    )
    try:
        while (piece := utterance.next(utterance.budget)) is not None:
            yield piece
    finally:
        utterance.close()


def time_text(engine: SpeechEngine, text: str, voice: VoiceBlend) -> tuple[float, float]:
    """Synthesize `text` as one chunk (seed 0): (compute seconds, audio seconds)."""
    started = time.perf_counter()
    pieces = speak_all(engine, text, voice, seed=0, growth=Growth(MAX_CHUNK_CHARS, MAX_CHUNK_CHARS))
    samples = sum(len(piece.audio) for piece in pieces)
    return time.perf_counter() - started, samples / SAMPLE_RATE
