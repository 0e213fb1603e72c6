"""What one request has synthesized so far: chunks, audio, phonemes, frames, characters."""

from __future__ import annotations

from ..formats import SAMPLE_RATE
from .speech import SpeechChunk

__all__ = ["Progress"]

TYPICAL_CHARS_PER_SECOND = 15.0


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
