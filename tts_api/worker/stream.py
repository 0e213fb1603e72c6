"""One admitted request inside a worker: its text cursor, its encoder, and the audio it has sent.

A stream advances one chunk per `step`, cut within the size the scheduler allows; the frames it returns
go to the front in order. It owns one encoder, released by `close` however the stream ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import TTSError
from ..formats import SAMPLE_RATE
from ..ipc.frames import Ticket
from ..schemas import PlannedSpeech
from ..text.planning import Chunk, ChunkCursor, Growth
from .encoders import Encoder, open_encoder
from .progress import Progress
from .scheduler import StreamView

if TYPE_CHECKING:  # the engine imports kokoro; this module stays importable without it
    from .engine import Engine, SpeechChunk

__all__ = ["Step", "Stream"]


class Step:
    """What one step produced: frames to send, and what the cost model should learn from it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.chars = 0  # characters of text synthesized (0 for a pause)
        self.audio_s = 0.0
        self.compute_s = 0.0
        self.done = False  # the stream has said everything; frames end with its end frame


class Stream:
    """See the module docstring. `uid` and `reply_to` are LitServe's names for where its frames go."""

    def __init__(
        self,
        uid: str,
        reply_to: int,
        ticket: Ticket,
        speech: PlannedSpeech,
        engine: Engine,
        *,
        arrived_s: float,
    ) -> None:
        self.uid, self.reply_to, self.ticket, self.speech = uid, reply_to, ticket, speech
        request = speech.request
        self.progress = Progress()
        self._cursor = ChunkCursor(speech.script)
        self._growth = Growth()
        self._budget = self._growth.budget
        self._wants_words = request.stream and request.stream_format != "audio"
        self._encoder: Encoder | None = open_encoder(request.response_format, streaming=request.stream)
        self._pieces: Iterator[SpeechChunk] = engine.speak(
            request.input,
            self._chunks(),
            speech.voice,
            speed=request.speed,
            lang_code=speech.lang_code,
            seed=request.seed,
        )
        self.interrupted = False  # a chunk was abandoned mid-synthesis: the stream cannot go on
        self.view = StreamView(
            ticket.key, arrived_s, request.speed, remaining_chars=self._cursor.remaining_chars or 1
        )

    @property
    def key(self) -> str:
        return self.ticket.key

    def _chunks(self) -> Iterator[Chunk]:
        growth = self._growth
        while (
            chunk := self._cursor.next(self._budget, reach=growth.reach, min_cost=growth.min_cost)
        ) is not None:
            growth.spoke(chunk)
            yield chunk

    def step(self, max_chars: int) -> Step:
        """Synthesize the next chunk (at most `max_chars` of text) and encode it; the frames to send.

        A seeded request keeps to the lone-stream plan whatever the load, so that its audio is the same
        every time; the others take the scheduler's limit too.
        """
        step = Step()
        if self.speech.request.seed is None:
            max_chars = min(self._growth.budget, max_chars)
        else:
            max_chars = self._growth.budget
        self._budget = max(1, max_chars)
        started = time.perf_counter()
        piece = next(self._pieces, None)
        step.compute_s = time.perf_counter() - started
        if piece is None:
            step.frames += self._finish()
            step.done = True
            self.view.remaining_chars = 0
            return step
        assert self._encoder is not None, "a closed stream was stepped"
        self.progress.add(piece)
        step.chars, step.audio_s = len(piece.graphemes), len(piece.audio) / SAMPLE_RATE
        data = self._encoder.write(piece.audio)
        if data:
            step.frames.append(self.ticket.audio_frame(data, audio_end_s=self.progress.audio_seconds))
        if self._wants_words and piece.words:
            step.frames.append(self.ticket.words_frame([w.to_dict() for w in piece.words]))
        self.view.remaining_chars = self._cursor.remaining_chars or 1  # 1: the engine may hold a last piece
        return step

    def _finish(self) -> list[bytes]:
        frames = []
        if self._encoder is not None:
            tail = self._encoder.finish()
            if tail:
                frames.append(self.ticket.audio_frame(tail, audio_end_s=self.progress.audio_seconds))
        frames.append(
            self.ticket.end_frame(audio_seconds=self.progress.audio_seconds, usage=self.progress.usage())
        )
        return frames

    def error_frame(self, error: TTSError) -> bytes:
        return self.ticket.error_frame(error)

    def close(self) -> None:
        """Release the encoder and the engine's generator; safe to call more than once."""
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
