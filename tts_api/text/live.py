"""Text that grows while it is spoken (a voice agent's LLM reply, token by token): chunks cut only where sure.

The planner's rules decide a cut from the words around it ("Dr." before "Smith" is no sentence end, "5."
before "30" no number's end), so the last word received is never cut after until more text follows it, or
the client says the text so far is complete (a flush), or ends the stream. Within what is sure, `next`
cuts like the lone-stream plan: a budget, a sentence end taken wherever it falls, a clause or word break
once the budget is full; a chunk never ends at the edge of what is sure unless that edge is a real
boundary (a sentence end, a paragraph or pause, a flush). Nothing sure to say: `next` says so (None) and
the stream waits for text.

Each `next` reads the unspoken text from its start, at most WINDOW_CHARS of it: the cost of a chunk is in
the length of a chunk, however far the client's text has run ahead of the speech.
"""

from __future__ import annotations

from dataclasses import replace

from .planning import GAP_AFTER_S, MAX_CHUNK_CHARS, Chunk, ChunkCursor, choose_cut
from .segmentation import BoundaryKind, Paragraph, Pause, Rank, Script, Token, segment

__all__ = ["WINDOW_CHARS", "LiveText", "TextOverflow"]

WINDOW_CHARS = 4 * MAX_CHUNK_CHARS  # of the unspoken text, what one cut reads


class TextOverflow(ValueError):
    """Raised when a stream's text grows past its bound, or its pauses add up past theirs."""


class LiveText:
    """See the module docstring. `text` is everything received; chunk spans index into it."""

    def __init__(
        self,
        *,
        normalize: bool,
        max_chars: int,
        max_pause_s: float = float("inf"),
        cap: int = MAX_CHUNK_CHARS,
    ) -> None:
        self.normalize, self.max_chars, self.max_pause_s, self.cap = normalize, max_chars, max_pause_s, cap
        self.pause_s = 0.0  # pause tags cut so far, added up
        self.text = ""
        self.ended = False
        self._spoken = 0  # text[:spoken] is cut into chunks
        self._final = 0  # text[:final] ends where the client said its text was complete (flush, end)

    def add(self, text: str, *, flush: bool = False) -> None:
        """More text; `flush`: what is there now is complete (speak it without waiting for more)."""
        if self.ended:
            raise ValueError("text added to a stream that has ended")
        if len(self.text) + len(text) > self.max_chars:
            raise TextOverflow(f"the stream's text is longer than {self.max_chars} characters")
        self.text += text
        if flush:
            self._final = len(self.text)

    def end(self) -> None:
        """No more text: everything received is spoken."""
        self.ended = True
        self._final = len(self.text)

    @property
    def unspoken(self) -> str:
        return self.text[self._spoken :]

    @property
    def _mid_line(self) -> bool:
        """The unspoken text goes on a line that spoken text began: it has no line markup at its start."""
        before = self.text[: self._spoken].rstrip(" \t")
        return bool(before) and not before.endswith("\n")

    @property
    def done(self) -> bool:
        """Ended, and everything said."""
        return self.ended and not self.unspoken.strip()

    @property
    def drained(self) -> bool:
        """Everything the client declared complete is cut into chunks, and nothing else came."""
        return self._final >= len(self.text) and not self.unspoken.strip()

    @property
    def remaining_chars(self) -> int:
        """Characters not yet cut into chunks that are sure enough to cut now (0: waiting for text)."""
        rest = self.unspoken
        if not rest.strip():
            return 0
        if self._final >= len(self.text):
            return len(rest)
        last_space = rest.rstrip().rfind(" ")  # the word after it may go on
        return max(0, self._final - self._spoken, last_space + 1 if rest[:last_space].strip() else 0)

    def next(self, budget: int, *, reach: int = 0, min_cost: int = 0) -> Chunk | None:
        """The next chunk, cut within `budget` where the text is sure; None when nothing sure is left to say
        now (`done` tells whether more may come)."""
        budget = max(1, min(budget, self.cap))
        while True:
            rest = self.unspoken
            if not rest.strip():
                return None
            window = rest[:WINDOW_CHARS]
            final = self._final - self._spoken  # within `rest`: where the client's complete text ends
            whole = final >= len(rest) and len(window) == len(rest)  # all of it is here, and complete
            script = segment(window, normalize=self.normalize, mid_line=self._mid_line)
            cut = self._cut(script, final, whole, budget, reach, min_cost)
            if cut is None:
                return None
            end, kind = cut
            chunk = self._chunk(rest, end, kind)
            if chunk is not None:
                return chunk
            # Nothing to say up to there (symbols alone): skip it and look again.

    def _cut(
        self, script: Script, final: int, whole: bool, budget: int, reach: int, min_cost: int
    ) -> tuple[int, BoundaryKind] | None:
        """Where the next chunk ends in the unspoken text (an offset in it) and how; None: wait for text.

        Words are found in the normalized text; `final` and the answer are offsets in the text as received.
        """
        parts = script.parts
        if not parts:
            return (len(script.original), "end") if whole else None
        first = parts[0]
        if isinstance(first, Pause):
            return first.end, "pause"
        text, tokens = script.source.text, first.tokens

        def received(position: int) -> int:
            return script.source.original_span(position, position)[0]

        closed = len(parts) > 1 or whole  # the paragraph is complete: a break, a pause or the end follows
        sure = [
            k for k in range(len(tokens)) if k + 1 < len(tokens) or closed or received(tokens[k].end) <= final
        ]
        if not sure:  # only the last word, which may go on: unless it is longer than a chunk already
            if tokens[0].cost > budget:
                cut = choose_cut(text, tokens[:1], 0, tokens[0].start, budget, budget)
                return received(cut.split_at or tokens[0].end), "word"
            return None
        last = sure[-1]
        ending = tokens[last]
        bounded = last == len(tokens) - 1 or ending.rank >= Rank.SENTENCE or received(ending.end) <= final
        if _cost(tokens[: last + 1]) <= budget:
            # All that is sure fits: take it whole if it ends at a real boundary, else its whole sentences.
            if bounded:
                return received(ending.end), _kind(parts, last, whole)
            ends = [k for k in sure if tokens[k].rank >= Rank.SENTENCE]
            return (received(tokens[ends[-1]].end), "sentence") if ends else None
        # `reach` keeps a first sentence whole when its end is within it; the edge of what is sure is no
        # sentence end, so there it would only make a first chunk longer than its budget.
        cut = choose_cut(
            text,
            tokens[: last + 1],
            0,
            tokens[0].start,
            budget,
            self.cap,
            reach=reach if bounded else 0,
            min_cost=min_cost,
        )
        if cut.split_at is not None:
            return received(cut.split_at), "word"
        return received(tokens[cut.last].end), _kind(parts, cut.last, whole)

    def _chunk(self, rest: str, end: int, kind: BoundaryKind) -> Chunk | None:
        """The chunk of `rest[:end]`, its spans in the whole text; moves past it."""
        offset = self._spoken
        piece = rest[:end]
        self._spoken += end
        script = segment(piece, normalize=self.normalize, mid_line=self._mid_line)
        chunk = ChunkCursor(script, max(self.cap, len(piece))).next(max(self.cap, len(piece)))
        if chunk is None:
            return None
        self.pause_s += chunk.pause_s
        if self.pause_s > self.max_pause_s:
            raise TextOverflow(
                f"the stream's pause tags add up to more than {self.max_pause_s:g} s of silence"
            )
        source = chunk._source.shifted(offset, len(piece)) if chunk._source is not None else None
        if kind == "end" and not self.ended:
            kind = "sentence"  # a flush: more may come after it
        gap = 0.0 if chunk.is_pause else GAP_AFTER_S[kind]
        return replace(
            chunk,
            start=chunk.start + offset,
            end=chunk.end + offset,
            boundary=kind,
            gap_after_s=gap,
            _source=source,
        )


def _cost(tokens: tuple[Token, ...]) -> int:
    """The chunk cost of consecutive words."""
    return sum(t.cost for t in tokens) + sum(t.space_after for t in tokens[:-1])


def _kind(parts: tuple[Paragraph | Pause, ...], k: int, whole: bool) -> BoundaryKind:
    """How a chunk that ends after word k of the first paragraph ends."""
    paragraph = parts[0]
    assert isinstance(paragraph, Paragraph)
    if k < len(paragraph.tokens) - 1:
        return paragraph.tokens[k].rank.kind
    if len(parts) > 1:
        return "pause" if isinstance(parts[1], Pause) else paragraph.end
    return "end" if whole else paragraph.tokens[k].rank.kind
