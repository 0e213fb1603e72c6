"""One admitted request inside a worker: its text cursor and the audio it has sent.

A stream advances one chunk per `step`, cut within the size the scheduler allows; the frames it returns
go to the front in order, its audio as 16-bit PCM (the front encodes it in the client's format: a
worker's thread only synthesizes). `close` releases its utterance however the stream ends.

A live stream (a voice agent's context) gets its text in pieces (`feed`), while it plays: it cuts only what
is sure (text/live.py), waits for text when nothing is (its view asks for no work), says so once it has
spoken all its client declared complete (an idle frame), and ends when the client ends its text. Text
that comes after its player ran dry starts like a newcomer: due at once, a small first chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..encoders import to_pcm16
from ..errors import InputTooLong, InvalidRequest
from ..formats import SAMPLE_RATE
from ..ipc.frames import Ticket
from ..schemas import PlannedSpeech
from ..settings import DEFAULT_MAX_AUDIO_S, DEFAULT_MAX_PAUSE_S
from ..synth.progress import Progress
from ..synth.speech import Chunks, RawPiece, RenderJob, SpeechChunk, SpeechEngine
from ..text.live import LiveText, TextOverflow
from ..text.planning import ChunkCursor
from ..text.segmentation import InvalidPauseTag
from ..voices import ENGLISH
from .scheduler import StreamView

__all__ = ["Step", "Stream"]


class Step:
    """What one step produced: frames to send, and what the cost model should learn from it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.chars = 0  # characters of text synthesized (0 for a pause)
        self.audio_s = 0.0
        self.compute_s = 0.0
        self.done = False  # the stream has said everything; frames end with its end frame
        self.costed = True  # the cost model learns from it (in a batch, only from its longest member)


class Stream:
    """See the module docstring. `uid` and `reply_to` are LitServe's names for where its frames go."""

    def __init__(
        self,
        uid: str,
        reply_to: int,
        ticket: Ticket,
        speech: PlannedSpeech,
        engine: SpeechEngine,
        *,
        arrived_s: float,
        max_live_chars: int = 50_000,
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
        max_audio_s: float = DEFAULT_MAX_AUDIO_S,
    ) -> None:
        self.uid, self.reply_to, self.ticket, self.speech = uid, reply_to, ticket, speech
        request = speech.request
        self.progress = Progress()
        self.live: LiveText | None = None
        chunks: Chunks
        if ticket.live:
            self.live = LiveText(
                normalize=request.normalize and speech.lang_code in ENGLISH,
                max_chars=max_live_chars,
                max_pause_s=max_pause_s,
            )
            chunks = self.live
        else:
            chunks = ChunkCursor(speech.script)
        self._wants_words = ticket.live or (request.stream and request.stream_format != "audio")
        self._idle_said = True  # a live stream says it is idle once per text it was given
        self._utterance = engine.utterance(
            chunks, speech.voice, speed=request.speed, lang_code=speech.lang_code, seed=request.seed
        )
        self._closed = False
        self.max_audio_s = (
            max_audio_s  # a live stream's audio, pauses included (a whole text is checked ahead)
        )
        self.interrupted = False  # a chunk was abandoned mid-synthesis: the stream cannot go on
        self.waiting = self.live is not None  # a live stream with nothing sure to say (none at first)
        self.expected_chars = 0  # a live stream's text, as admission guessed it (see `expect`)
        self.view = StreamView(ticket.key, arrived_s, request.speed)
        self._update_view()
        self._fix_plan()

    @property
    def key(self) -> str:
        return self.ticket.key

    def step(self, max_chars: int) -> Step:
        """Synthesize the next chunk (at most `max_chars` of text); the frames to send."""
        started = time.perf_counter()
        work = self.prepare(max_chars)
        step = work if isinstance(work, Step) else self.finish(work.render(work.text))
        step.compute_s = time.perf_counter() - started
        return step

    def prepare(self, max_chars: int) -> Step | RenderJob:
        """The next step if it needs no synthesis (a pause, nothing to say now, the end), else the chunk to
        synthesize (at most `max_chars` of text) for `finish`: the worker may batch it with others'.

        A seeded request keeps to the lone-stream plan whatever the load, so that its audio is the same
        every time; the others take the scheduler's limit too.
        """
        budget = self._utterance.budget
        if self.speech.request.seed is None:
            budget = min(budget, max_chars)
        try:
            work = self._utterance.prepare(budget)
        except InvalidPauseTag as exc:  # only live text is cut here: a whole request's was checked
            raise InvalidRequest(str(exc), param="text", code="invalid_pause_tag") from None
        except TextOverflow as exc:  # its pauses added up past the bound
            raise InputTooLong(str(exc), param="text", code="pause_too_long") from None
        return work if isinstance(work, RenderJob) else self._frames(work)

    def finish(self, pieces: Iterator[RawPiece]) -> Step:
        """The frames of the first piece of the chunk `prepare` asked for, from what the engine made."""
        return self._frames(self._utterance.rendered(pieces))

    def _frames(self, piece: SpeechChunk | None) -> Step:
        step = Step()
        if piece is None and not self._utterance.done:
            self.waiting = True  # a live stream with nothing sure to say: no work until more text comes
            if self.live is not None and self.live.drained and not self._idle_said:
                self._idle_said = True
                step.frames.append(self.ticket.idle_frame())
            self._update_view()
            return step
        if piece is None:
            step.frames += self._finish()
            step.done = True
            self.view.remaining_chars = 0
            return step
        if self._closed:
            raise RuntimeError("a closed stream was stepped")
        self.progress.add(piece)
        if self.live is not None and self.progress.audio_seconds > self.max_audio_s:
            raise InputTooLong(
                f"the stream's audio is longer than {self.max_audio_s / 60:g} minutes; open a new one",
                param="text",
                code="audio_too_long",
            )
        step.chars, step.audio_s = len(piece.graphemes), len(piece.audio) / SAMPLE_RATE
        step.frames.append(
            self.ticket.audio_frame(to_pcm16(piece.audio), audio_end_s=self.progress.audio_seconds)
        )
        if self._wants_words and piece.words:
            words = self.ticket.words_frame([w.to_dict() for w in piece.words])
            # A live stream's socket sends each piece of audio with its words' timings: they come first.
            step.frames.insert(0 if self.live is not None else len(step.frames), words)
        self._update_view()
        self._fix_plan()
        return step

    def feed(self, text: str, *, flush: bool, ended: bool, now: float, fed_at: float | None = None) -> None:
        """More text for a live stream (from the board), which came at `fed_at` (`now` if unknown);
        InputTooLong past its bound."""
        if self.live is None or self.live.ended:
            return
        if text or flush:
            try:
                self.live.add(text, flush=flush)
            except TextOverflow as exc:
                raise InputTooLong(str(exc), param="text") from None
            self._idle_said = False
        if ended:
            self.live.end()
        # Its player ran dry while it had nothing to say, and only then did text come: that text is a
        # newcomer's. A player that ran dry while its text waited for the worker is only late: a newcomer's
        # small chunks would cost the worker more than it has, and keep it late.
        out = self.view.played_out_s()
        starved = self.waiting and out is not None and out <= (now if fed_at is None else fed_at)
        self.waiting = False
        if starved and self._utterance.remaining_chars:
            self.view.restart(now)
            self._utterance.restart()
            self._fix_plan()
        self._update_view()

    def expect(self, chars: int) -> None:
        """Admission took this live stream for `chars` of text: until its client has sent that much, or
        ended it, the scheduler counts the rest as still to come."""
        self.expected_chars = chars
        self._update_view()

    def _update_view(self) -> None:
        """What the scheduler sees of the work left: none while waiting for text; at least 1 while the
        utterance may still hold a piece of the last chunk (done only when it says so)."""
        waiting = self.waiting and not (self.live is not None and self.live.ended)
        self.view.remaining_chars = 0 if waiting else self._utterance.remaining_chars or 1
        # A context that has not said a word yet holds no place: none of its audio plays, so nothing of it
        # can stutter, and one opened and left idle would otherwise keep everyone else out.
        live = self.live
        speaking = live is not None and not live.ended and live.text.strip() != ""
        self.view.to_come_chars = max(0, self.expected_chars - len(live.text)) if live and speaking else 0

    def _fix_plan(self) -> None:
        """Tell the scheduler the lone-stream plan's next chunk: a seeded stream keeps to it exactly."""
        self.view.plan_chars = self._utterance.budget
        if self.speech.request.seed is not None:
            self.view.fixed_chars = self._utterance.budget

    def _finish(self) -> list[bytes]:
        stats = {"audio_seconds": self.progress.audio_seconds, "usage": self.progress.usage()}
        return [self.ticket.end_frame(**stats)]

    def close(self) -> None:
        """Release the utterance; safe to call more than once."""
        self._closed = True
        self._utterance.close()
