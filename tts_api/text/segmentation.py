"""Segment request text for planning: paragraphs of words, the rank of the cut after each word, pauses.

Pause tags (``[pause:1.5s]``, ``[pause:500ms]``) become exact silences of at most MAX_PAUSE_S each. A tag
that cannot be honoured (``[pause:abc]``, ``[pause:-1s]``, ``[pause:99s]``) raises InvalidPauseTag, which
the server returns as HTTP 400: the client meant a pause, and speaking the tag or clamping it silently would
hide the mistake. Bracketed text that is not a tag (``[pause]``, ``[Pause for effect]``) is spoken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from .normalization import normalize as normalize_text
from .spans import NormalizedText

__all__ = [
    "COST_PER_AUDIO_S",
    "MAX_PAUSE_S",
    "BoundaryKind",
    "InvalidPauseTag",
    "Paragraph",
    "Pause",
    "Rank",
    "Script",
    "Token",
    "cost",
    "segment",
]

BoundaryKind = Literal["word", "clause", "sentence", "paragraph", "pause", "end"]

MAX_PAUSE_S = 10.0
# Kokoro at speed 1 speaks about this much `cost` (about as many characters) per second of audio.
COST_PER_AUDIO_S = 15.0

# Costs count characters weighted as phonemes: misaki reads "777" as "seven hundred seventy-seven", so a
# digit costs 9, and an uppercase letter 3 ("FBI" is read "ef bee eye").
_DIGIT_COST = 9
_UPPER_COST = 3


class Rank(IntEnum):
    """How good a place to end a chunk the gap after a word is, best last."""

    AVOID = 0  # "Dr." before a name, "No." before a number
    WEAK = 1  # after a function word ("the"), between a number and its unit ("5 p.m.")
    WORD = 2
    CLAUSE = 3
    SENTENCE = 4

    @property
    def kind(self) -> BoundaryKind:
        return "sentence" if self is Rank.SENTENCE else "clause" if self is Rank.CLAUSE else "word"


class InvalidPauseTag(ValueError):
    """Raised when a ``[pause:…]`` tag has no valid duration or asks for more than MAX_PAUSE_S."""

    def __init__(self, tag: str, position: int, problem: str) -> None:
        super().__init__(
            f"pause tag {tag!r} at character {position} {problem}; "
            f"write e.g. [pause:1.5s] or [pause:500ms], at most {MAX_PAUSE_S:g} s per tag"
        )
        self.tag = tag
        self.position = position


@dataclass(frozen=True)
class Token:
    """One word of the (normalized) text: where it is, what it costs, how well a chunk may end after it."""

    start: int
    end: int
    cost: int
    rank: Rank  # of the cut after this word (for the last word of a paragraph: its own punctuation)
    space_after: bool  # whitespace separates it from the next word (a space joins the chunk's text)


@dataclass(frozen=True)
class Paragraph:
    """Words between paragraph breaks or pause tags; `end` is how its last chunk ends."""

    tokens: tuple[Token, ...]
    end: BoundaryKind
    has_speech: bool  # any letter or digit: a paragraph of symbols alone says nothing


@dataclass(frozen=True)
class Pause:
    """An exact silence from a pause tag; the span is in the original request text."""

    start: int
    end: int
    seconds: float


@dataclass(frozen=True)
class Script:
    """A request text cut into paragraphs and pauses, in order, with the text they index into."""

    original: str
    source: NormalizedText
    parts: tuple[Paragraph | Pause, ...]

    @property
    def pause_s(self) -> float:
        """The silence its pause tags ask for, in all."""
        return sum(part.seconds for part in self.parts if isinstance(part, Pause))

    def audio_s(self, speed: float = 1.0) -> float:
        """About how long its speech lasts at `speed`, its pauses included (a bound for validation)."""
        spoken = sum(t.cost for part in self.parts if isinstance(part, Paragraph) for t in part.tokens)
        return spoken / COST_PER_AUDIO_S / speed + self.pause_s


def cost(text: str) -> int:
    """The phoneme-weighted length of `text` that chunk budgets count."""
    digits = sum(map(str.isdigit, text))
    upper = sum(map(str.isupper, text))
    return len(text) + (_DIGIT_COST - 1) * digits + (_UPPER_COST - 1) * upper


def segment(text: str, *, normalize: bool = True, mid_line: bool = False) -> Script:
    """Normalize (optionally) and segment `text`; raise InvalidPauseTag for a tag that cannot be honoured.
    `mid_line`: `text` goes on a line begun before it (see normalize)."""
    source = normalize_text(text, mid_line=mid_line) if normalize else NormalizedText.unchanged(text)
    parts: list[Paragraph | Pause] = []
    pos = 0
    for tag in _PAUSE_TAG.finditer(source.text):
        parts += _paragraphs(text, source, pos, tag.start())
        start, end = source.original_span(*tag.span())
        parts.append(Pause(start, end, _pause_seconds(tag, text, (start, end))))
        pos = tag.end()
    parts += _paragraphs(text, source, pos, len(source.text))
    return Script(text, source, tuple(parts))


# --- Pause tags ----------------------------------------------------------------------------------------

_PAUSE_TAG = re.compile(r"\[[^\S\n]{0,8}pause[^\S\n]{0,8}:([^\[\]\n]{0,40})\]", re.IGNORECASE)
_PAUSE_VALUE = re.compile(r"(\d{1,6}(?:\.\d{0,6})?|\.\d{1,6})[^\S\n]{0,4}(ms|s)", re.IGNORECASE)


def _pause_seconds(tag: re.Match[str], text: str, span: tuple[int, int]) -> float:
    """Read a tag's duration; errors quote the tag as the client wrote it."""
    value = _PAUSE_VALUE.fullmatch(tag.group(1).strip())
    if value is None:
        raise InvalidPauseTag(text[span[0] : span[1]], span[0], "has no valid duration")
    seconds = float(value.group(1)) / (1000 if value.group(2).lower() == "ms" else 1)
    if seconds > MAX_PAUSE_S:
        raise InvalidPauseTag(text[span[0] : span[1]], span[0], f"asks for {seconds:g} s")
    return seconds


# --- Paragraphs and words ------------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")


def _paragraphs(original: str, source: NormalizedText, start: int, end: int) -> list[Paragraph]:
    paragraphs: list[Paragraph] = []
    pos = start
    for brk in _PARAGRAPH_BREAK.finditer(source.text, start, end):
        paragraphs += _paragraph(original, source, pos, brk.start(), "paragraph")
        pos = brk.end()
    return paragraphs + _paragraph(original, source, pos, end, None)


def _paragraph(
    original: str, source: NormalizedText, start: int, end: int, end_kind: BoundaryKind | None
) -> list[Paragraph]:
    text = source.text
    spans = _join_readings(source, original, _word_spans(text, start, end))
    if not spans:
        return []
    tokens = tuple(
        Token(
            start=s,
            end=e,
            cost=cost(text[s:e]),
            rank=_rank_after(text, spans, k) if k + 1 < len(spans) else _punctuation_rank(text[s:e], ""),
            space_after=k + 1 < len(spans) and spans[k + 1][0] > e,
        )
        for k, (s, e) in enumerate(spans)
    )
    has_speech = any(ch.isalnum() for s, e in spans for ch in text[s:e])
    return [Paragraph(tokens, end_kind or tokens[-1].rank.kind, has_speech)]


_WORD = re.compile(r"\S+")
# An em dash inside a word ("result—surprisingly—was") is a clause break without spaces; not in 1990—2000.
_INNER_DASH = re.compile(r"(?<=[^\d\s—])—+(?=[^\s—])")
# misaki's [word](/phonemes/) syntax, and links when text is not normalized: never split.
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,200}\]\([^()\n]{0,300}\)")
_CLOSERS = "\"')]}’”»*_"
_OPENERS = "\"'([{‘“«¿¡*_"
_DASHES = frozenset({"-", "--", "---", "—", "–", "―"})

Span = tuple[int, int]


def _word_spans(text: str, start: int, end: int) -> list[Span]:
    spans: list[Span] = []
    for match in _WORD.finditer(text, start, end):
        pos = match.start()
        for dash in _INNER_DASH.finditer(text, match.start(), match.end()):
            spans.append((pos, dash.end()))
            pos = dash.end()
        spans.append((pos, match.end()))
    brackets = [match.span() for match in _BRACKETED.finditer(text, start, end)]
    return _join_overlapping(spans, brackets) if brackets else spans


def _join_overlapping(spans: list[Span], groups: list[Span]) -> list[Span]:
    """Join the words that overlap the same group (a bracketed span) into one."""
    joined: list[Span] = []
    k = 0
    for span in spans:
        while k < len(groups) and groups[k][1] <= span[0]:
            k += 1
        if joined and k < len(groups) and groups[k][0] < span[1] and joined[-1][1] > groups[k][0]:
            joined[-1] = (joined[-1][0], span[1])
        else:
            joined.append(span)
    return joined


def _join_readings(source: NormalizedText, original: str, spans: list[Span]) -> list[Span]:
    """Join words that normalization made out of one original word ("example dot com" from "example.com")."""
    joined: list[Span] = []
    for span in spans:
        if joined and span[0] > joined[-1][1]:
            gap_start, gap_end = source.original_span(joined[-1][1], span[0])
            if not any(ch.isspace() for ch in original[gap_start:gap_end]):
                joined[-1] = (joined[-1][0], span[1])
                continue
        joined.append(span)
    return joined


# --- Ranks ---------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Abbreviations that precede what they qualify, so their period never ends a sentence ("Dr. Smith").
_NEVER_END = _words(
    "mr mrs ms mx dr prof st sr jr rev fr hon gen col capt lt sgt maj cmdr gov sen rep pres supt mt ft "
    "vs v e.g eg i.e ie cf viz approx fig figs vol vols pp ca"
)
# Abbreviations that may also end a sentence ("at 5 p.m. Then…" but "the U.S. Army").
_MAYBE_END = _words("etc inc ltd co corp llc plc al jan feb mar apr jun jul aug sep sept oct nov dec")
# A chunk that ends on one of these sounds cut off ("…and the"), so cut elsewhere when possible.
_FUNCTION_WORDS = _words(
    "a an the of to in on at by for with from into onto upon and or but nor as than that which who whose "
    "if so is are was were be been has have had do does did will would can could should may might must not "
    "my your our their his her its this these those very"
)


def _rank_after(text: str, spans: list[Span], k: int) -> Rank:
    (start, end), (next_start, next_end) = spans[k], spans[k + 1]
    following = text[next_start:next_end]
    rank = _punctuation_rank(text[start:end], following.lstrip(_OPENERS))
    if "\n" in text[end:next_start]:
        rank = max(rank, Rank.CLAUSE)
    if rank < Rank.CLAUSE and (following in _DASHES or (text[end - 1].isdigit() and len(following) <= 4)):
        rank = Rank.WEAK  # keep "5 p.m.", "10 km" together, and do not start a chunk with a dash
    return rank


def _punctuation_rank(word: str, following: str) -> Rank:
    core = word.rstrip(_CLOSERS) or word
    last = core[-1]
    if last in "!?":
        return Rank.SENTENCE
    if last == "…" or core.endswith(".."):
        return Rank.SENTENCE if following[:1].isupper() else Rank.CLAUSE
    if last == ".":
        return _period_rank(core[:-1].lstrip(_OPENERS), following)
    if last in ",;:—–" or core in _DASHES:
        return Rank.CLAUSE
    return Rank.WEAK if core.lower() in _FUNCTION_WORDS else Rank.WORD


def _period_rank(stem: str, following: str) -> Rank:
    lower = stem.lower()
    if (
        lower in _NEVER_END
        or (lower == "no" and following[:1].isdigit())
        or (len(stem) == 1 and stem.isalpha())
    ):
        return Rank.AVOID  # "Dr. Smith", "No. 5", "John F. Kennedy"
    if lower in _MAYBE_END or ("." in stem and stem.replace(".", "").isalpha()):
        return Rank.CLAUSE if following[:1].isupper() else Rank.WORD
    return Rank.SENTENCE
