"""Plan request text into synthesis chunks: small first, growing, pause tags kept out of the model.

Pause tags (``[pause:1.5s]``, ``[pause:500ms]``) become exact silences of at most MAX_PAUSE_S each. A tag
that cannot be honoured (``[pause:abc]``, ``[pause:-1s]``, ``[pause:99s]``) raises InvalidPauseTag, which
the server returns as HTTP 400: the client meant a pause, and speaking the tag or clamping it silently would
hide the mistake. Bracketed text that is not a tag (``[pause]``, ``[Pause for effect]``) is spoken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from .normalization import NormalizedText
from .normalization import normalize as normalize_text

__all__ = [
    "FIRST_CHUNK_CHARS",
    "GAP_AFTER_S",
    "MAX_CHUNK_CHARS",
    "MAX_PAUSE_S",
    "BoundaryKind",
    "Chunk",
    "InvalidPauseTag",
    "has_speech",
    "plan_chunks",
]

BoundaryKind = Literal["word", "clause", "sentence", "paragraph", "pause", "end"]

# Budgets count characters weighted as phonemes: misaki reads "777" as "seven hundred seventy-seven", so
# a digit costs 9, and an uppercase letter 3 ("FBI" is read "ef bee eye"). Plain English is ~1.07 phonemes
# per character, so MAX_CHUNK_CHARS keeps a chunk well under Kokoro's 510-phoneme limit.
FIRST_CHUNK_CHARS = 50  # about 3 s of speech: the first audio comes after one short synthesis
MAX_CHUNK_CHARS = 360
_DIGIT_COST = 9
_UPPER_COST = 3

MAX_PAUSE_S = 10.0

# Silence to leave after a chunk's speech, once the engine has trimmed the chunk's edge silence (Kokoro
# pads each chunk with ~0.3 s before and ~0.45 s after). Measured inside Kokoro's own speech (af_heart,
# -40 dBFS): 0.34 s after a period, 0.28 s after a comma. Before a pause tag the tag alone sets the silence.
GAP_AFTER_S: dict[BoundaryKind, float] = {
    "word": 0.1,
    "clause": 0.25,
    "sentence": 0.35,
    "paragraph": 0.7,
    "pause": 0.0,
    "end": 0.0,
}


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
class Chunk:
    """One unit of synthesis: text for the model, or an exact pause.

    ``start``/``end`` span the original request text (before normalization); ``boundary`` says how the
    chunk ends and ``gap_after_s`` how much silence should follow its speech.
    """

    text: str  # what the engine speaks; "" for a pause
    start: int
    end: int
    boundary: BoundaryKind
    gap_after_s: float
    pause_s: float = 0.0  # > 0 only for a pause chunk: exact silence, no model call
    _source: NormalizedText | None = field(default=None, repr=False, compare=False)

    @property
    def is_pause(self) -> bool:
        return self.pause_s > 0

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map ``text[start:end]`` of this chunk to the span of the request text it came from."""
        if self._source is None:
            return self.start, self.end
        return self._source.original_span(start, end)


def has_speech(chunks: Iterable[Chunk]) -> bool:
    """Tell whether any chunk has text for the model (the server answers 400 when none has)."""
    return any(chunk.text for chunk in chunks)


def plan_chunks(
    text: str,
    *,
    normalize: bool = True,
    first_chunk_chars: int = FIRST_CHUNK_CHARS,
    max_chunk_chars: int = MAX_CHUNK_CHARS,
) -> list[Chunk]:
    """Split request text into speech and pause chunks: the first short, later ones growing to the cap."""
    if not 0 < first_chunk_chars <= max_chunk_chars:
        raise ValueError(
            f"need 0 < first_chunk_chars <= max_chunk_chars, got {first_chunk_chars}, {max_chunk_chars}"
        )
    source = normalize_text(text) if normalize else NormalizedText.unchanged(text)
    planner = _Planner(text, source, first_chunk_chars, max_chunk_chars)
    pos = 0
    for tag in _PAUSE_TAG.finditer(source.text):
        planner.speak(pos, tag.start())
        planner.pause(tag.start(), tag.end(), _pause_seconds(tag, text, source.original_span(*tag.span())))
        pos = tag.end()
    planner.speak(pos, len(source.text))
    return planner.finish()


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


# --- Planning ------------------------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_WHITESPACE = re.compile(r"\s+")


class _Planner:
    """Accumulates chunks in order, growing the budget after each speech chunk."""

    def __init__(
        self, original: str, source: NormalizedText, first_chunk_chars: int, max_chunk_chars: int
    ) -> None:
        self.original = original
        self.source = source
        self.first_budget = self.budget = first_chunk_chars
        self.cap = max_chunk_chars
        self.first_cost = self.spoken_cost = 0
        self.chunks: list[Chunk] = []
        self.last_end = 0  # in the original text; keeps spans ordered and disjoint

    def speak(self, start: int, end: int) -> None:
        pos = start
        for brk in _PARAGRAPH_BREAK.finditer(self.source.text, start, end):
            self._paragraph(pos, brk.start(), "paragraph")
            pos = brk.end()
        self._paragraph(pos, end, None)

    def pause(self, start: int, end: int, seconds: float) -> None:
        if seconds <= 0:
            return
        span_start, span_end = self.source.original_span(start, end)
        previous = self.chunks[-1] if self.chunks else None
        if previous is not None and previous.is_pause:  # nothing speakable between: the pauses add up
            span_start, seconds = previous.start, previous.pause_s + seconds
            self.chunks.pop()
        self.chunks.append(Chunk("", span_start, span_end, "pause", 0.0, pause_s=seconds))
        self.last_end = span_end

    def finish(self) -> list[Chunk]:
        """Settle how each speech chunk ends: before a pause tag, at the very end, or as planned."""
        chunks = self.chunks
        for k, chunk in enumerate(chunks):
            if chunk.is_pause:
                continue
            kind: BoundaryKind = chunk.boundary
            if k + 1 == len(chunks):
                kind = "end"
            elif chunks[k + 1].is_pause:
                kind = "pause"
            if kind != chunk.boundary:
                chunks[k] = replace(chunk, boundary=kind, gap_after_s=GAP_AFTER_S[kind])
        return chunks

    def _paragraph(self, start: int, end: int, last_kind: BoundaryKind | None) -> None:
        text = self.source.text
        tokens = _join_readings(self.source, self.original, _tokens(text, start, end))
        if not tokens:
            return
        costs = [_cost(text[s:e]) for s, e in tokens]
        gaps = [int(tokens[k + 1][0] > tokens[k][1]) for k in range(len(tokens) - 1)]
        ranks = [_rank_after(text, tokens, k) for k in range(len(tokens) - 1)]
        first = 0
        while first < len(tokens):
            head = tokens[first][0]
            candidates, rest_fits = _candidates(costs, gaps, ranks, first, self.budget)
            if rest_fits or (not candidates and costs[first] <= self.cap):
                # All the rest, or one word over a small early budget ("1,000,000" costs 65): whole.
                last = len(tokens) - 1 if rest_fits else first
                at_end = last == len(tokens) - 1
                kind = (
                    (last_kind or _KINDS[_rank_at_end(text, tokens[last])]) if at_end else _KINDS[ranks[last]]
                )
                self._emit(head, tokens[last][1], kind)
                first = last + 1
                continue
            if not candidates:  # one word over the cap: the only place a word is cut
                cut = _hard_split(text, head, tokens[first][1], self.budget)
                costs[first] -= _cost(text[head:cut])
                tokens[first][0] = cut
                self._emit(head, cut, "word")
                continue
            last = _choose(candidates, self.budget)
            self._emit(head, tokens[last][1], _KINDS[ranks[last]])
            first = last + 1

    def _emit(self, start: int, end: int, kind: BoundaryKind) -> None:
        text = self.source.text[start:end]
        start, end = start + len(text) - len(text.lstrip()), end - len(text) + len(text.rstrip())
        piece = self.source.slice(start, end)
        piece = piece.edit(
            [(m.start(), m.end(), " ") for m in _WHITESPACE.finditer(piece.text) if m.group() != " "]
        )
        if not any(ch.isalnum() for ch in piece.text):
            return  # punctuation or symbols alone: nothing to say
        span_start, span_end = self.source.original_span(start, end)
        span_start = max(span_start, self.last_end)
        span_end = max(span_end, span_start)
        self.last_end = span_end
        self.chunks.append(Chunk(piece.text, span_start, span_end, kind, GAP_AFTER_S[kind], _source=piece))
        # The next chunk may cost the first chunk plus all chunks so far: at a real-time factor of 0.5 that
        # is the most that is synthesized before the audio already sent finishes playing. When every chunk
        # fills its budget this is plain doubling (50, 100, 200, 360); after a short chunk it still grows.
        cost = _cost(piece.text)
        self.first_cost = self.first_cost or cost
        self.spoken_cost += cost
        self.budget = min(self.cap, max(self.first_budget, self.first_cost + self.spoken_cost))


def _cost(text: str) -> int:
    digits = sum(map(str.isdigit, text))
    upper = sum(map(str.isupper, text))
    return len(text) + (_DIGIT_COST - 1) * digits + (_UPPER_COST - 1) * upper


def _candidates(
    costs: list[int], gaps: list[int], ranks: list[int], first: int, budget: int
) -> tuple[list[tuple[int, int, int]], bool]:
    """List (token, cost up to it, rank of the cut after it) within the budget; say if all the rest fits."""
    total = costs[first]
    if total > budget:
        return [], False
    candidates: list[tuple[int, int, int]] = []
    for k in range(first, len(costs) - 1):
        candidates.append((k, total, ranks[k]))
        total += gaps[k] + costs[k + 1]
        if total > budget:
            return candidates, False
    return candidates, True


# Cut-point ranks, best last. A sentence end is taken wherever it falls (a short first chunk is welcome);
# a clause break only once the chunk is 20 % full, a plain word break at 50 %; a tiny first word alone
# ("Hello,") is taken only when nothing else fits.
_AVOID, _WEAK, _WORD, _CLAUSE, _SENTENCE = range(5)
_PREFERENCES = ((_SENTENCE, 0.0), (_CLAUSE, 0.2), (_WORD, 0.5), (_WORD, 0.25), (_WEAK, 0.0))
_KINDS: dict[int, BoundaryKind] = {
    _AVOID: "word",
    _WEAK: "word",
    _WORD: "word",
    _CLAUSE: "clause",
    _SENTENCE: "sentence",
}


def _choose(candidates: list[tuple[int, int, int]], budget: int) -> int:
    for rank, min_fill in _PREFERENCES:
        for token, cost, token_rank in reversed(candidates):
            if cost < min_fill * budget:
                break
            if token_rank >= rank:
                return token
    return candidates[-1][0]


def _hard_split(text: str, start: int, end: int, budget: int) -> int:
    """Cut a word longer than the budget, after a separator in its last few characters if there is one."""
    cut, total = start, 0
    while cut < end:
        total += _cost(text[cut])
        if total > budget and cut > start:
            break
        cut += 1
    for k in range(cut - 1, max(start, cut - 24), -1):
        if text[k - 1] in " /.-_?&=,;:#" and not text[k].isdigit():
            return k
    return cut


# --- Words and the cut after each ----------------------------------------------------------------------

_TOKEN = re.compile(r"\S+")
# An em dash inside a word ("result—surprisingly—was") is a clause break without spaces; not in 1990—2000.
_INNER_DASH = re.compile(r"(?<=[^\d\s—])—+(?=[^\s—])")
# misaki's [word](/phonemes/) syntax, and links when text is not normalized: never split.
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,200}\]\([^()\n]{0,300}\)")
_CLOSERS = "\"')]}’”»*_"
_OPENERS = "\"'([{‘“«¿¡*_"
_DASHES = frozenset({"-", "--", "---", "—", "–", "―"})


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


def _tokens(text: str, start: int, end: int) -> list[list[int]]:
    """Split a paragraph into words ([start, end] lists: a hard split moves a word's start)."""
    tokens: list[list[int]] = []
    for match in _TOKEN.finditer(text, start, end):
        pos = match.start()
        for dash in _INNER_DASH.finditer(text, match.start(), match.end()):
            tokens.append([pos, dash.end()])
            pos = dash.end()
        tokens.append([pos, match.end()])
    brackets = [match.span() for match in _BRACKETED.finditer(text, start, end)]
    return _join_spans(tokens, brackets) if brackets else tokens


def _join_spans(tokens: list[list[int]], spans: list[tuple[int, int]]) -> list[list[int]]:
    """Join the tokens that overlap the same span into one."""
    joined: list[list[int]] = []
    k = 0
    for token in tokens:
        while k < len(spans) and spans[k][1] <= token[0]:
            k += 1
        if joined and k < len(spans) and spans[k][0] < token[1] and joined[-1][1] > spans[k][0]:
            joined[-1][1] = token[1]
        else:
            joined.append(token)
    return joined


def _join_readings(source: NormalizedText, original: str, tokens: list[list[int]]) -> list[list[int]]:
    """Join words that normalization made out of one original word ("example dot com" from "example.com")."""
    joined: list[list[int]] = []
    for token in tokens:
        if joined and token[0] > joined[-1][1]:
            gap_start, gap_end = source.original_span(joined[-1][1], token[0])
            if not any(ch.isspace() for ch in original[gap_start:gap_end]):
                joined[-1][1] = token[1]
                continue
        joined.append(token)
    return joined


def _rank_after(text: str, tokens: list[list[int]], k: int) -> int:
    (start, end), (next_start, next_end) = tokens[k], tokens[k + 1]
    following = text[next_start:next_end]
    rank = _punctuation_rank(text[start:end], following.lstrip(_OPENERS))
    if "\n" in text[end:next_start]:
        rank = max(rank, _CLAUSE)
    if rank < _CLAUSE and (following in _DASHES or (text[end - 1].isdigit() and len(following) <= 4)):
        rank = _WEAK  # keep "5 p.m.", "10 km" together, and do not start a chunk with a dash
    return rank


def _rank_at_end(text: str, token: list[int]) -> int:
    return _punctuation_rank(text[token[0] : token[1]], "")


def _punctuation_rank(word: str, following: str) -> int:
    core = word.rstrip(_CLOSERS) or word
    last = core[-1]
    if last in "!?":
        return _SENTENCE
    if last == "…" or core.endswith(".."):
        return _SENTENCE if following[:1].isupper() else _CLAUSE
    if last == ".":
        return _period_rank(core[:-1].lstrip(_OPENERS), following)
    if last in ",;:—–" or core in _DASHES:
        return _CLAUSE
    return _WEAK if core.lower() in _FUNCTION_WORDS else _WORD


def _period_rank(stem: str, following: str) -> int:
    lower = stem.lower()
    if (
        lower in _NEVER_END
        or (lower == "no" and following[:1].isdigit())
        or (len(stem) == 1 and stem.isalpha())
    ):
        return _AVOID  # "Dr. Smith", "No. 5", "John F. Kennedy"
    if lower in _MAYBE_END or ("." in stem and stem.replace(".", "").isalpha()):
        return _CLAUSE if following[:1].isupper() else _WORD
    return _SENTENCE
