"""Character timings for a piece of audio, from the word timings the worker sends (the duration predictor's).

A message's alignment covers the text from where the previous one stopped to the end of its last word
(its closing marks included), then a space, so that a client that splits words at spaces closes the last
one (Pipecat keeps a word open across messages until it sees one). A word's characters share its time
evenly; the spaces and marks between words take none, at the end of the word before them. Times are
milliseconds, from the start of the message's audio, or of the context's (ElevenLabs' `sync_alignment`,
which LiveKit asks for), kept monotone and within the audio. The normalized alignment is the same words as
the model read them ("**bold**" is "bold", a URL is read out), each followed by a space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Aligner", "Alignment"]


@dataclass
class Alignment:
    """ElevenLabs' shape: one entry per character."""

    chars: list[str] = field(default_factory=list)
    starts_ms: list[int] = field(default_factory=list)
    durations_ms: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"chars": self.chars, "charStartTimesMs": self.starts_ms, "charDurationsMs": self.durations_ms}


class _Builder:
    """Adds characters to an alignment, monotone and within the message's audio."""

    def __init__(self, origin_s: float, end_s: float) -> None:
        self.alignment, self.origin_s = Alignment(), origin_s
        self.ceiling_ms = round((end_s - origin_s) * 1000)

    def add(self, char: str, at_s: float, duration_s: float) -> None:
        a = self.alignment
        start_ms = min(
            max(round((at_s - self.origin_s) * 1000), a.starts_ms[-1] if a.starts_ms else 0), self.ceiling_ms
        )
        a.chars.append(char)
        a.starts_ms.append(start_ms)
        a.durations_ms.append(max(0, min(round(duration_s * 1000), self.ceiling_ms - start_ms)))

    def word(self, chars: str, begin_s: float, finish_s: float) -> None:
        """A word's characters share its time evenly."""
        share = (finish_s - begin_s) / max(1, len(chars))
        for k, char in enumerate(chars):
            self.add(char, begin_s + k * share, share)


class Aligner:
    """Cuts one context's text into per-message alignments, in order."""

    def __init__(self, *, cumulative: bool) -> None:
        self.cumulative = cumulative
        self._covered = 0  # the text up to here is in an earlier message

    def align(
        self, text: str, words: list[dict[str, Any]], start_s: float, end_s: float
    ) -> tuple[Alignment, Alignment] | None:
        """The alignments of audio from `start_s` to `end_s` into the context, which says `words` (spans in
        `text`): of the user's characters, and of the spoken ones (the words as normalized, a space after
        each); None if it says none."""
        words = [w for w in words if w["char_end"] > self._covered]
        if not words:
            return None
        origin = 0.0 if self.cumulative else start_s
        user, spoken = _Builder(origin, end_s), _Builder(origin, end_s)
        clock = max(start_s, float(words[0]["start"]))
        position = self._covered
        for word in words:
            first, last = max(word["char_start"], self._covered), word["char_end"]
            for char in text[position:first]:  # spaces and marks before the word
                if user.alignment.chars or not char.isspace():
                    user.add(char, clock, 0.0)
            begin, finish = max(float(word["start"]), clock), max(float(word["end"]), clock)
            user.word(text[first:last], begin, finish)
            spoken.word(word.get("spoken") or text[first:last], begin, finish)
            spoken.add(" ", finish, 0.0)
            clock, position = finish, last
        while position < len(text) and not text[position].isspace():  # the word's closing marks ("today?")
            user.add(text[position], clock, 0.0)
            position += 1
        user.add(" ", clock, 0.0)
        self._covered = position
        return user.alignment, spoken.alignment
