"""Cut text that arrives in pieces (an LLM's reply, token by token) at sentence ends, once they are sure.

A period is only known to end a sentence once the next word is there ("Dr." + "Smith" is no end, "5." +
"30" may be a number), so the last word of the text so far is never cut after; `finish` hands over the rest.
The sentence rules are the server's own planner's (abbreviations, numbers, initials).
"""

from __future__ import annotations

from ..text.segmentation import InvalidPauseTag, Paragraph, Rank, segment

__all__ = ["SentenceCutter"]


class SentenceCutter:
    """Accumulates text; `add` returns the complete sentences it can release, in order."""

    def __init__(self) -> None:
        self._text = ""

    def add(self, text: str) -> list[str]:
        """Take more text; return the text of every sentence now complete, oldest first (maybe none)."""
        self._text += text
        cuts = self._sentence_ends()
        if not cuts:
            return []
        sentences = [self._text[a:b].strip() for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
        self._text = self._text[cuts[-1] :]
        return [s for s in sentences if s]

    def finish(self) -> str:
        """The text not released yet (the last sentence, often without its final punctuation)."""
        rest, self._text = self._text.strip(), ""
        return rest

    def _sentence_ends(self) -> list[int]:
        try:
            script = segment(self._text, normalize=False)
        except InvalidPauseTag:
            return []  # the server will quote the bad tag when the text is spoken; do not cut around it
        paragraphs = [p for p in script.parts if isinstance(p, Paragraph)]
        ends: list[int] = []
        for number, paragraph in enumerate(paragraphs):
            last_paragraph = number == len(paragraphs) - 1
            for k, token in enumerate(paragraph.tokens):
                is_last_word = k == len(paragraph.tokens) - 1
                if is_last_word and last_paragraph:
                    break  # what follows decides whether this is an end: wait for it
                if token.rank is Rank.SENTENCE or is_last_word:
                    ends.append(token.end)  # a sentence, or a paragraph (or pause tag) boundary
        return ends
