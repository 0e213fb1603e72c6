"""Cut text that arrives in pieces (an LLM's reply, token by token) at sentence ends, once they are sure.

A period is only known to end a sentence once the next word is there ("Dr." + "Smith" is no end, "5." +
"30" may be a number), so the last word of the text so far is never cut after; `finish` hands over the rest.
The sentence rules are the server's own planner's (abbreviations, numbers, initials).

Bounded and incremental: a stream of text is at most `max_chars` long in all (TextTooLong beyond), and each
piece is read only from the last word before it on, since every earlier word already had its next word. A
sentence that runs past `max_pending_chars` without an end is cut anyway, at its best sure clause or word
break (the planner's ranks), so what waits stays small and each piece costs time in its own length only.
"""

from __future__ import annotations

from ..text.segmentation import InvalidPauseTag, Paragraph, Rank, Script, segment

__all__ = ["MAX_PENDING_CHARS", "MAX_TEXT_CHARS", "SentenceCutter", "TextTooLong"]

MAX_TEXT_CHARS = 50_000  # a whole text stream, as the server's default max_input_chars
MAX_PENDING_CHARS = 1_000  # text waiting for its sentence to end
_MIN_FILL = 0.25  # a forced cut at a clause or word break keeps at least this share of the pending text


class TextTooLong(ValueError):
    """Raised when a text stream grows past its `max_chars`."""


class SentenceCutter:
    """Accumulates text; `add` returns the complete sentences it can release, in order."""

    def __init__(self, max_chars: int = MAX_TEXT_CHARS, max_pending_chars: int = MAX_PENDING_CHARS) -> None:
        self.max_chars, self.max_pending_chars = max_chars, max_pending_chars
        self._text = ""  # not released yet
        # Where in `_text` the next read starts: the word before the last (a pause tag that begins the last
        # word makes that one a paragraph's end), everything before it had its next word already.
        self._undecided = 0
        self._total = 0

    def add(self, text: str) -> list[str]:
        """Take more text; return the text of every sentence now complete, oldest first (maybe none)."""
        self._total += len(text)
        if self._total > self.max_chars:
            raise TextTooLong(f"the text stream is longer than {self.max_chars} characters")
        self._text += text
        released = self._release(self._sentence_ends())
        while len(self._text) > self.max_pending_chars:
            released += self._release([self._forced_cut()])
        return [s for s in released if s]

    def finish(self) -> str:
        """The text not released yet (the last sentence, often without its final punctuation)."""
        rest, self._text, self._undecided = self._text.strip(), "", 0
        return rest

    def _release(self, cuts: list[int]) -> list[str]:
        if not cuts:
            return []
        sentences = [self._text[a:b].strip() for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
        self._text = self._text[cuts[-1] :]
        self._undecided = max(0, self._undecided - cuts[-1])
        return sentences

    def _sentence_ends(self) -> list[int]:
        """Sure sentence ends in the text from the last undecided word on (positions in `_text`)."""
        start = self._undecided
        script = _segment(self._text[start:])
        if script is None:
            return []  # the server will quote the bad tag when the text is spoken; do not cut around it
        paragraphs = [p for p in script.parts if isinstance(p, Paragraph)]
        ends: list[int] = []
        previous = 0
        for number, paragraph in enumerate(paragraphs):
            last_paragraph = number == len(paragraphs) - 1
            for k, token in enumerate(paragraph.tokens):
                is_last_word = k == len(paragraph.tokens) - 1
                if is_last_word and last_paragraph:
                    self._undecided = start + previous  # what follows decides: wait for it
                    break
                previous = token.start
                if token.rank is Rank.SENTENCE or is_last_word:
                    ends.append(start + token.end)  # a sentence, or a paragraph (or pause tag) boundary
        return ends

    def _forced_cut(self) -> int:
        """Where to cut a sentence that outgrew `max_pending_chars`: its last sure clause break that keeps
        enough of it, else its last word break, else inside the (giant) word."""
        limit = self.max_pending_chars
        script = _segment(self._text[:limit])
        tokens = [t for p in script.parts if isinstance(p, Paragraph) for t in p.tokens] if script else []
        sure = [t for t in tokens[:-1] if t.end <= limit]  # the last one may go on past the limit
        for rank, fill in ((Rank.CLAUSE, _MIN_FILL), (Rank.WORD, _MIN_FILL), (Rank.AVOID, 0.0)):
            for token in reversed(sure):
                if token.end < fill * limit:
                    break
                if token.rank >= rank:
                    return token.end
        space = self._text.rfind(" ", 1, limit)
        return space if space > 0 else limit


def _segment(text: str) -> Script | None:
    try:
        return segment(text, normalize=False)
    except InvalidPauseTag:
        return None
