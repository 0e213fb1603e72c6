"""Plan synthesis chunks from a segmented text: each cut the best natural boundary within a budget.

`ChunkCursor` hands out one chunk at a time for whatever budget the caller can afford right now (the
worker's scheduler shrinks it under load); `plan_chunks` is the whole plan for a lone stream: a short first
chunk, then chunks that grow as the audio already sent covers their synthesis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from .segmentation import BoundaryKind, Paragraph, Pause, Rank, Script, Token, cost, segment
from .spans import NormalizedText

__all__ = [
    "FIRST_CHUNK_CHARS",
    "GAP_AFTER_S",
    "MAX_CHUNK_CHARS",
    "Chunk",
    "ChunkCursor",
    "Cut",
    "Growth",
    "choose_cut",
    "has_speech",
    "plan_chunks",
]

# Budgets count phoneme-weighted characters (see segmentation.cost). Plain English is ~1.07 phonemes per
# character, so MAX_CHUNK_CHARS keeps a chunk well under Kokoro's 510-phoneme limit.
FIRST_CHUNK_CHARS = 30  # a few words, about 2 s of speech: the first audio comes after a tiny synthesis
MAX_CHUNK_CHARS = 360
FIRST_REACH = 1.3  # a first sentence up to 1.3x the first budget is taken whole
FIRST_MIN = 0.4  # a first chunk cut mid-sentence is at least 40 % of its budget
# A cut inside a sentence leaves at least this much of it: Kokoro reads a stub such as "and warm." with
# a broken melody (PocketSphinx heard "...sunny and warm" cut there as "you saw me and warm up").
TAIL_MIN_CHARS = 12
# A chunk cut below this share of its budget only because the next word is big ("to" before
# "$1,249.99,", which misaki reads as 66 phonemes) takes that word along: Kokoro reads a lone "to" or
# "In" with a melody of its own, and each chunk pays the model's fixed cost.
STUB_FILL = 0.25

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

    @property
    def cost(self) -> int:
        """The phoneme-weighted length budgets count (0 for a pause)."""
        return cost(self.text)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map ``text[start:end]`` of this chunk to the span of the request text it came from."""
        if self._source is None:
            return self.start, self.end
        return self._source.original_span(start, end)


def has_speech(chunks: Iterable[Chunk]) -> bool:
    """Tell whether any chunk has text for the model (the server answers 400 when none has)."""
    return any(chunk.text for chunk in chunks)


# --- The cut -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """Where a chunk ends: after word `last`, or inside it at `split_at` (a word longer than the cap)."""

    last: int
    split_at: int | None = None


# Cut preferences, best first: a sentence end is taken wherever it falls (a short first chunk is welcome),
# a clause break only once the chunk is 20 % full, a plain word break at 50 %; a tiny first word alone
# ("Hello,") is taken only when nothing else fits.
_PREFERENCES = (
    (Rank.SENTENCE, 0.0),
    (Rank.CLAUSE, 0.2),
    (Rank.WORD, 0.5),
    (Rank.WORD, 0.25),
    (Rank.WEAK, 0.0),
)


def choose_cut(
    text: str,
    tokens: Sequence[Token],
    first: int,
    head: int,
    budget: int,
    cap: int,
    *,
    reach: int = 0,
    min_cost: int = 0,
) -> Cut:
    """The best end for a chunk starting at `head` inside `tokens[first]`, within `budget`.

    All the rest of the paragraph when it fits; else the best-ranked boundary that leaves the chunk full
    enough (and at least `min_cost`, unless it ends a sentence); one word over a small budget whole
    ("1,000,000" costs 65); a word over `cap` split. With `reach` above the budget, a sentence that ends
    within `reach` is taken whole rather than cut mid-way (a first chunk: "Dr. Smith went to Washington.").
    """
    # A cost is at least the length: past max(budget, cap) characters the exact cost changes no decision,
    # and counting all of a 100,000-character word for each of its chunks is quadratic.
    total = cost(text[head : min(tokens[first].end, head + max(budget, cap) + 1)])
    if total > budget:
        if total <= cap:
            return Cut(first)
        return Cut(first, _hard_split(text, head, tokens[first].end, budget))
    candidates: list[tuple[int, int]] = []  # (word index, chunk cost up to it)
    limit = max(budget, reach)
    for k in range(first, len(tokens) - 1):
        if total <= budget:
            candidates.append((k, total))
        elif tokens[k].rank >= Rank.SENTENCE:
            return Cut(k)  # a sentence that ends within reach
        total += tokens[k].space_after + tokens[k + 1].cost
        if total > limit:
            break
    else:
        return Cut(len(tokens) - 1)
    last, chunk_cost = _preferred(tokens, candidates, budget, min_cost)
    stub = tokens[last].rank < Rank.SENTENCE and chunk_cost < STUB_FILL * budget
    if stub and last == candidates[-1][0] and total <= cap:
        # Only the big word after it (a number, a URL) kept the chunk this small: it comes along.
        return Cut(last + 1)
    return Cut(last)


def _preferred(
    tokens: Sequence[Token], candidates: Sequence[tuple[int, int]], budget: int, min_cost: int
) -> tuple[int, int]:
    """The candidate (word index, cost) the cut preferences rank best."""
    for tail in (TAIL_MIN_CHARS, 0):  # without a cut that leaves a fair tail, one that leaves a stub
        for rank, min_fill in _PREFERENCES:
            for k, chunk_cost in reversed(candidates):
                if chunk_cost < min_fill * budget:
                    break
                if tokens[k].rank < rank:
                    continue
                if tokens[k].rank >= Rank.SENTENCE:
                    return k, chunk_cost
                if chunk_cost >= min_cost and _sentence_rest(tokens, k, tail) >= tail:
                    return k, chunk_cost
    return candidates[-1]


def _sentence_rest(tokens: Sequence[Token], k: int, enough: int) -> int:
    """What the sentence still costs after word `k` (counting stops once it reaches `enough`)."""
    rest = 0
    for j in range(k + 1, len(tokens)):
        rest += tokens[j - 1].space_after + tokens[j].cost
        if rest >= enough or tokens[j].rank >= Rank.SENTENCE:
            break
    return rest


def _hard_split(text: str, start: int, end: int, budget: int) -> int:
    """Cut a word longer than the budget, after a separator in its last few characters if there is one."""
    cut, total = start, 0
    while cut < end:
        total += cost(text[cut])
        if total > budget and cut > start:
            break
        cut += 1
    for k in range(cut - 1, max(start, cut - 24), -1):
        if text[k - 1] in " /.-_?&=,;:#" and not text[k].isdigit():
            return k
    return cut


# --- Chunk by chunk ------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")


class ChunkCursor:
    """Hands out a script's chunks in order, each cut within the budget given for it.

    Pauses come out whole (adjacent ones, with nothing speakable between, add up); a chunk's boundary is
    `pause` before a pause and `end` for the last speech, so it asks for no gap of its own.
    """

    def __init__(self, script: Script, cap: int = MAX_CHUNK_CHARS) -> None:
        self.script = script
        self.cap = cap
        self._part = 0  # index into script.parts
        self._token = 0  # next word of the current paragraph
        self._head = -1  # where the next chunk starts inside that word (-1: at its start)
        self._last_end = 0  # in the original text; keeps spans ordered and disjoint
        self._suffix = [0] * (len(script.parts) + 1)  # characters of speech in parts[i:]
        for i in range(len(script.parts) - 1, -1, -1):
            part = script.parts[i]
            size = part.tokens[-1].end - part.tokens[0].start if isinstance(part, Paragraph) else 0
            self._suffix[i] = self._suffix[i + 1] + size

    @property
    def text(self) -> str:
        """The request text the chunks' spans index into."""
        return self.script.original

    @property
    def done(self) -> bool:
        return self._skip() >= len(self.script.parts)

    @property
    def remaining_chars(self) -> int:
        """Characters of speech not yet handed out (what is left to synthesize); 0 when done."""
        index = self._skip()
        parts = self.script.parts
        if index >= len(parts):
            return 0
        part = parts[index]
        rest = self._suffix[index + 1]
        if isinstance(part, Paragraph):
            head = part.tokens[self._token].start if self._head < 0 else self._head
            rest += part.tokens[-1].end - head
        return rest

    def next(self, budget: int, *, reach: int = 0, min_cost: int = 0) -> Chunk | None:
        """The next chunk, cut within `budget` (at most the cap); None when the script is spoken.

        `reach` and `min_cost` shape a first chunk (see `choose_cut`).
        """
        budget = max(1, min(budget, self.cap))
        while (index := self._skip()) < len(self.script.parts):
            part = self.script.parts[index]
            if isinstance(part, Pause):
                return self._pause(index)
            chunk = self._speech(part, budget, min(reach, self.cap), min_cost)
            if chunk is not None:
                return chunk
        return None

    def _skip(self) -> int:
        """Move past paragraphs with nothing to say and zero pauses; the index of the next part."""
        parts = self.script.parts
        while self._part < len(parts):
            part = parts[self._part]
            if isinstance(part, Pause):
                if part.seconds > 0:
                    break
            elif part.has_speech and self._token < len(part.tokens):
                break
            self._advance()
        return self._part

    def _advance(self) -> None:
        self._part += 1
        self._token, self._head = 0, -1

    def _pause(self, index: int) -> Chunk:
        parts = self.script.parts
        first = parts[index]
        assert isinstance(first, Pause)
        start, end, seconds = first.start, first.end, first.seconds
        self._advance()
        while (following := self._skip()) < len(parts) and isinstance(parts[following], Pause):
            pause = parts[following]
            assert isinstance(pause, Pause)
            end, seconds = pause.end, seconds + pause.seconds
            self._advance()
        self._last_end = end
        return Chunk("", start, end, "pause", 0.0, pause_s=seconds)

    def _speech(self, paragraph: Paragraph, budget: int, reach: int, min_cost: int) -> Chunk | None:
        text, tokens = self.script.source.text, paragraph.tokens
        first = self._token
        head = tokens[first].start if self._head < 0 else self._head
        cut = choose_cut(text, tokens, first, head, budget, self.cap, reach=reach, min_cost=min_cost)
        kind: BoundaryKind
        if cut.split_at is not None:
            end, kind = cut.split_at, "word"
            self._head = cut.split_at
        else:
            end = tokens[cut.last].end
            kind = paragraph.end if cut.last == len(tokens) - 1 else tokens[cut.last].rank.kind
            self._token, self._head = cut.last + 1, -1
        chunk = self._emit(head, end, kind)
        if chunk is not None and not self._speech_follows(paragraph):
            ending = self._ending()
            if ending is not None:
                chunk = replace(chunk, boundary=ending, gap_after_s=GAP_AFTER_S[ending])
        return chunk

    def _speech_follows(self, paragraph: Paragraph) -> bool:
        """Whether the current paragraph still has something to say after the cursor."""
        if self._token >= len(paragraph.tokens):
            return False
        text = self.script.source.text
        head = paragraph.tokens[self._token].start if self._head < 0 else self._head
        return any(ch.isalnum() for ch in text[head : paragraph.tokens[-1].end])

    def _ending(self) -> BoundaryKind | None:
        """How a paragraph's last speech ends when no more speech follows before a pause or the end."""
        saved = (self._part, self._token, self._head)
        self._advance()
        index = self._skip()
        self._part, self._token, self._head = saved
        if index >= len(self.script.parts):
            return "end"
        if isinstance(self.script.parts[index], Pause):
            return "pause"
        return None

    def _emit(self, start: int, end: int, kind: BoundaryKind) -> Chunk | None:
        source = self.script.source
        text = source.text[start:end]
        start, end = start + len(text) - len(text.lstrip()), end - len(text) + len(text.rstrip())
        piece = source.slice(start, end)
        piece = piece.edit(
            [(m.start(), m.end(), " ") for m in _WHITESPACE.finditer(piece.text) if m.group() != " "]
        )
        if not any(ch.isalnum() for ch in piece.text):
            return None  # punctuation or symbols alone: nothing to say
        span_start, span_end = source.original_span(start, end)
        span_start = max(span_start, self._last_end)
        span_end = max(span_end, span_start)
        self._last_end = span_end
        return Chunk(piece.text, span_start, span_end, kind, GAP_AFTER_S[kind], _source=piece)


class Growth:
    """Chunk budgets for a lone stream: the first small, then each as large as everything spoken so far.

    The first chunk is a few words: a sentence that ends within FIRST_REACH of the budget is kept whole,
    and a cut elsewhere takes at least FIRST_MIN of the budget (not "Hello," alone), so that its audio
    covers the synthesis of the next chunk.

    The next chunk may cost the first chunk plus all chunks so far: at a real-time factor of 0.5 that is
    the most that is synthesized before the audio already sent finishes playing. When every chunk fills
    its budget this is plain doubling (50, 100, 200, 360); after a short chunk it still grows.
    """

    def __init__(self, first: int = FIRST_CHUNK_CHARS, cap: int = MAX_CHUNK_CHARS) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"need 0 < first_chunk_chars <= max_chunk_chars, got {first}, {cap}")
        self.first, self.cap = first, cap
        self.budget = first
        self._first_cost = self._spoken_cost = 0

    @property
    def reach(self) -> int:
        return int(self.first * FIRST_REACH) if not self._spoken_cost else 0

    @property
    def min_cost(self) -> int:
        return int(self.first * FIRST_MIN) if not self._spoken_cost else 0

    def spoke(self, chunk: Chunk) -> None:
        """Account for a chunk handed out; pauses cost nothing."""
        if chunk.is_pause:
            return
        self._first_cost = self._first_cost or chunk.cost
        self._spoken_cost += chunk.cost
        self.budget = min(self.cap, max(self.first, self._first_cost + self._spoken_cost))


def plan_chunks(
    text: str,
    *,
    normalize: bool = True,
    first_chunk_chars: int = FIRST_CHUNK_CHARS,
    max_chunk_chars: int = MAX_CHUNK_CHARS,
) -> list[Chunk]:
    """Split request text into speech and pause chunks: the first short, later ones growing to the cap."""
    growth = Growth(first_chunk_chars, max_chunk_chars)
    cursor = ChunkCursor(segment(text, normalize=normalize), max_chunk_chars)
    chunks: list[Chunk] = []
    while (chunk := cursor.next(growth.budget, reach=growth.reach, min_cost=growth.min_cost)) is not None:
        growth.spoke(chunk)
        chunks.append(chunk)
    return chunks
