"""Word timestamps: group misaki's tokens into words and map them back to the user's own text.

misaki times each token (a word, or a punctuation mark) from Kokoro's predicted durations, relative
to the piece of audio it was synthesized in, and its text is the normalized text the model read.
Tokens are grouped at whitespace and punctuation ("$5.20" is "$" + "5.20"); each group's span in the
chunk maps back through the normalization to the user's text, widens to the whitespace-delimited
word it falls in (minus surrounding punctuation), and groups landing in the same word merge: one
entry per word the user wrote, as they wrote it ("https://example.com" read as "example dot com",
"40" read as "forty").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..text.planning import Chunk

__all__ = ["TimedToken", "WordTiming", "word_timings"]


class TimedToken(Protocol):
    """What misaki's MToken provides."""

    text: str
    whitespace: str
    start_ts: float | None
    end_ts: float | None


@dataclass(frozen=True)
class WordTiming:
    word: str  # as the user wrote it
    start: float  # seconds from the start of the response's audio
    end: float
    char_start: int  # span of `word` in the request's input
    char_end: int
    spoken: str = ""  # the word as the model read it (normalized: "**bold**" is "bold")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_punctuation(text: str) -> bool:
    return all(unicodedata.category(ch).startswith(("P", "Z")) for ch in text)


def word_timings(
    tokens: Iterable[TimedToken], chunk: Chunk, original: str, *, shift_s: float, start_s: float, end_s: float
) -> list[WordTiming]:
    """Timings of the words in `tokens`, moved by `shift_s` and kept inside [start_s, end_s]."""
    words: list[WordTiming] = []
    group: list[tuple[int, int, TimedToken]] = []
    cursor = 0
    spoken_at = (-1, -1)  # the last word's span in the chunk's (normalized) text

    def close() -> None:
        nonlocal spoken_at
        starts = [t.start_ts for _, _, t in group if t.start_ts is not None]
        ends = [t.end_ts for _, _, t in group if t.end_ts is not None]
        if starts and ends:
            char_start, char_end = _user_word(original, *chunk.original_span(group[0][0], group[-1][1]))
            start = min(max(min(starts) + shift_s, start_s), end_s)
            end = min(max(max(ends) + shift_s, start), end_s)
            at = _user_word(chunk.text, group[0][0], group[-1][1])
            spoken = chunk.text[at[0] : at[1]]
            if words and (words[-1].char_start, words[-1].char_end) == (char_start, char_end):
                part = words.pop()  # another part of the same word ("example dot com", "well-known")
                start, spoken = part.start, part.spoken if at == spoken_at else f"{part.spoken} {spoken}"
            spoken_at = at
            words.append(WordTiming(original[char_start:char_end], start, end, char_start, char_end, spoken))
        group.clear()

    for token in tokens:
        found = chunk.text.find(token.text, cursor) if token.text else -1
        if found < 0:
            continue  # a token misaki made up (none seen so far); it has no place in the text
        cursor = found + len(token.text)
        if _is_punctuation(token.text):
            close()
            continue
        group.append((found, cursor, token))
        if token.whitespace:
            close()
    close()
    return _monotonic(words)


def _is_edge_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P") or ch in "*_`~"


def _user_word(original: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span to the whitespace-delimited word around it, without its surrounding punctuation."""
    if start >= end:
        return start, end
    left, right = start, end
    while left > 0 and not original[left - 1].isspace():
        left -= 1
    while right < len(original) and not original[right].isspace():
        right += 1
    while left < start and _is_edge_mark(original[left]):
        left += 1
    while right > end and _is_edge_mark(original[right - 1]):
        right -= 1
    return left, right


def _monotonic(words: Sequence[WordTiming]) -> list[WordTiming]:
    """Kokoro's durations are ordered, but rounding at a clamp must never make time run backwards."""
    result: list[WordTiming] = []
    floor = 0.0
    for w in words:
        start = max(w.start, floor)
        end = max(w.end, start)
        result.append(WordTiming(w.word, start, end, w.char_start, w.char_end, w.spoken))
        floor = start
    return result
