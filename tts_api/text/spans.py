"""Text derived from a request by edits, and the map from any span of it back to the request."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Edit", "NormalizedText"]

Edit = tuple[int, int, str]
"""Replace ``text[start:end]`` with a new string ("" deletes, ``start == end`` inserts)."""


@dataclass(frozen=True)
class _Layer:
    """One round of edits: output pieces, each copied (exact) or replaced from a source span."""

    out_starts: list[int]
    pieces: list[tuple[int, int, int, int, bool]]  # out_start, out_end, src_start, src_end, exact

    def map_point(self, pos: int) -> int:
        if not self.pieces:
            return 0
        i = bisect_right(self.out_starts, pos) - 1
        out_start, out_end, src_start, src_end, exact = self.pieces[i]
        if pos >= out_end:  # the end of the output
            return src_end
        return src_start + (pos - out_start) if exact else src_start

    def map_span(self, start: int, end: int) -> tuple[int, int]:
        if start >= end:
            point = self.map_point(start)
            return point, point
        first = self.pieces[bisect_right(self.out_starts, start) - 1]
        last = self.pieces[bisect_right(self.out_starts, end - 1) - 1]
        src_start = first[2] + (start - first[0]) if first[4] else first[2]
        src_end = last[2] + (end - last[0]) if last[4] else last[3]
        return src_start, src_end


@dataclass(frozen=True)
class NormalizedText:
    """Text derived from an input by edits, with the map from its spans back to the input.

    ``edit`` and ``slice`` derive new texts that still map to the same original input.
    """

    text: str
    _layers: tuple[_Layer, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def unchanged(cls, text: str) -> NormalizedText:
        """Wrap text that maps 1:1 onto itself."""
        return cls(text)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map ``text[start:end]`` to the span of the original input it came from."""
        if not 0 <= start <= end <= len(self.text):
            raise ValueError(f"span ({start}, {end}) is outside the text of length {len(self.text)}")
        for layer in reversed(self._layers):
            start, end = layer.map_span(start, end)
        return start, end

    def shifted(self, offset: int, original_length: int) -> NormalizedText:
        """The same text, its spans mapped `offset` further into a longer original (this one's original,
        `original_length` long, begins at `offset` there)."""
        layer = _Layer([0], [(0, original_length, offset, offset + original_length, True)])
        return NormalizedText(self.text, (layer, *self._layers))

    def slice(self, start: int, end: int) -> NormalizedText:
        """Return ``text[start:end]`` as its own text whose spans still map to the original input."""
        layer = _Layer([0], [(0, end - start, start, end, True)])
        return NormalizedText(self.text[start:end], (*self._layers, layer))

    def edit(self, edits: Iterable[Edit]) -> NormalizedText:
        """Apply sorted, non-overlapping edits; spans of the result map through them to the original."""
        out: list[str] = []
        starts: list[int] = []
        pieces: list[tuple[int, int, int, int, bool]] = []
        size = pos = 0
        changed = False
        for start, end, new in edits:
            if start < pos or end < start:
                raise ValueError(f"edit ({start}, {end}) overlaps or precedes the previous one")
            for src_start, src_end, piece, exact in (
                (pos, start, self.text[pos:start], True),
                (start, end, new, False),
            ):
                if piece:
                    out.append(piece)
                    starts.append(size)
                    pieces.append((size, size + len(piece), src_start, src_end, exact))
                    size += len(piece)
            changed = changed or end > start or bool(new)
            pos = end
        if not changed:
            return self
        if pos < len(self.text):
            out.append(self.text[pos:])
            starts.append(size)
            pieces.append((size, size + len(self.text) - pos, pos, len(self.text), True))
        return NormalizedText("".join(out), (*self._layers, _Layer(starts, pieces)))
