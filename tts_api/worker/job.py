"""One speech request inside a worker: what it asked for, and where it has got to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import TTSError
from ..formats import SAMPLE_RATE
from ..ipc.frames import Ticket
from ..schemas import PlannedSpeech, SpeechRequest

if TYPE_CHECKING:  # the engine imports kokoro; this module stays importable without it
    from .engine import SpeechChunk

__all__ = ["Job", "Progress", "Stage"]

TYPICAL_CHARS_PER_SECOND = 15.0
Stage = Literal["queued", "streaming"]


class Progress:
    """What one job has synthesized so far."""

    def __init__(self) -> None:
        self.chunks = 0
        self.samples = 0
        self.phonemes = 0
        self.frames = 0
        self.characters = 0

    def add(self, chunk: SpeechChunk) -> None:
        self.chunks += 1
        self.samples += len(chunk.audio)
        self.phonemes += len(chunk.phonemes)
        self.frames += chunk.frames
        self.characters += len(chunk.graphemes)

    @property
    def audio_seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def characters_per_second(self, speed: float) -> float:
        """Speaking rate so far, or Kokoro's typical ~15 characters per second before any audio."""
        if self.samples and self.characters:
            return self.characters / self.audio_seconds
        return TYPICAL_CHARS_PER_SECOND * speed

    def usage(self) -> dict[str, int]:
        """OpenAI-style usage: phoneme tokens in, 25 ms audio frames (Kokoro's output steps) out."""
        return {
            "input_tokens": self.phonemes,
            "output_tokens": self.frames,
            "total_tokens": self.phonemes + self.frames,
        }


@dataclass
class Job:
    """The state of one request in a worker, shared by decode, predict and encode.

    Exactly one of `speech` (valid, planned) and `error` (what to tell the client) is set.
    """

    ticket: Ticket
    speech: PlannedSpeech | None = None
    error: TTSError | None = None
    cancelled_while: Stage | None = None
    progress: Progress = field(default_factory=Progress)

    @property
    def request(self) -> SpeechRequest:
        if self.speech is None:
            raise ValueError(f"request {self.ticket.request_id} has no valid speech request")
        return self.speech.request
