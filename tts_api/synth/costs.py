"""What a chunk of speech costs by its size, learned as it runs.

On the line, a chunk of `c` characters at speed `v` takes `overhead_s + c / v * compute_s_per_char` of
compute and makes `c / v * audio_s_per_char` seconds of audio (the curve below refines the first).
Start-up measures a few chunks (`fit`); every chunk the worker synthesizes afterwards is folded in
(`learn`), the line by least squares over the recent chunks, so a start-up measured on a busy machine, or
a machine whose speed changes, is corrected within a few chunks. How far its predictions missed
(`error_factor`) is measured too: admission plans with it instead of a fixed slack.

The pace of a long text (`throughput`, the capacity gauge) is what the long chunks measured, not the
line: the recent chunks are often all short (voice agents, one-sentence requests), and on a 2-vCPU Xeon a
line through chunks of 8-60 characters, with their audio per character (edge silence weighs more in a
short chunk), put 360-character chunks 1.2-1.4x faster than they ran.

What a chunk of a given size costs is not on one line either: Kokoro's small chunks cost about the same
whatever their size (on a 2-vCPU Zen 4, 0.41-0.50 s for 10-30 characters, then ~0.014 s per character up to
360), so a line through a voice agent's chunks and a long one put its first few words ~1.3-1.5x under what
they took; admission plans every chunk at the worst recent miss, and a second agent's reply waited until
the first one's was all synthesized. So `cost` is a curve (`_Curve`): knots at doubling sizes, drawn at
start-up through the chunks `fit` measured, then each moved by the chunks served near its size (and a
little by every other chunk, so a machine that slows is followed somewhat everywhere); the line only until
the curve has a knot.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..text.planning import MAX_CHUNK_CHARS
from ..text.segmentation import COST_PER_AUDIO_S

__all__ = ["TYPICAL_CHARS_PER_AUDIO_S", "UNLIMITED", "CostModel"]

# Kokoro at speed 1: about 15 characters per second of speech.
TYPICAL_CHARS_PER_AUDIO_S = COST_PER_AUDIO_S
UNLIMITED = 1 << 30
_DECAY = 0.9  # weight of a chunk after each newer one: about the last ten chunks count
_EWMA = 0.3  # audio per character: weight of the newest chunk
_MIN_SPREAD = 0.05  # chunk sizes must vary this much (relative variance) to tell the fixed cost apart
# The fixed part is capped at this share of the mean chunk's cost, against a fit thrown by noise; on a GPU
# (or emulated:200) it is most of a chunk's cost, and a lower cap made small chunks look cheap.
_MAX_FIXED_SHARE = 0.9
_LONG_CHUNK_CHARS = 240  # a chunk at least this long (at speed 1) measures the pace of a long text
_ERRORS = 64  # predictions remembered for the error factor: the worst of these is what admission plans for
_STARTUP_ERROR = 1.1  # the error factor before any chunk was predicted
_KNOTS = (8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)  # chunk sizes (characters at speed 1) the curve learns
_NEAR = 0.5  # how fast the knots beside a chunk's size move to what it cost
_DRIFT = 0.05  # how far the other knots follow it (more made a slow worker stutter on the fake clock)


@dataclass
class _Curve:
    """Compute seconds by chunk size: a piecewise-linear curve through knots learned from measured chunks,
    never falling as chunks grow. A chunk moves the two knots around its size most (least squares on the
    curve's hat functions; off the ends, the end knot by the ratio it missed by), and the others by a little
    of that ratio; a knot no chunk came near yet starts where the curve (or the line) put it."""

    knots: list[float | None] = field(default_factory=lambda: [None] * len(_KNOTS))
    _shape: list[tuple[float, float]] = field(default_factory=list)  # (size, cost) of the knots learned

    def __bool__(self) -> bool:
        return bool(self._shape)

    def through(self, points: Iterable[tuple[float, float]], line: CostModel) -> None:
        """Start from measured (size, seconds) points: each knot where the curve through them puts it (off
        their ends, as `at` extends a curve)."""
        self._shape = sorted(points)
        self.knots = [self.at(size, line) for size in _KNOTS]
        self._reshape()

    def learn(self, x: float, seconds: float, line: CostModel) -> None:
        """Fold in a chunk of size `x` that took `seconds`."""
        i = min(max(bisect.bisect_right(_KNOTS, x) - 1, 0), len(_KNOTS) - 2)
        for j in (i, i + 1):
            if self.knots[j] is None:
                self.knots[j] = self.at(_KNOTS[j], line)
        ratio = seconds / max(self.at(x, line), 1e-9)
        for j, knot in enumerate(self.knots):
            if knot is not None and j not in (i, i + 1):
                self.knots[j] = knot * (1.0 + _DRIFT * (ratio - 1.0))
        left, right = self.knots[i], self.knots[i + 1]
        assert left is not None and right is not None
        if _KNOTS[0] <= x <= _KNOTS[-1]:
            f = (x - _KNOTS[i]) / (_KNOTS[i + 1] - _KNOTS[i])
            miss = seconds - ((1.0 - f) * left + f * right)
            self.knots[i], self.knots[i + 1] = left + _NEAR * (1.0 - f) * miss, right + _NEAR * f * miss
        else:  # beyond the knots the curve is extrapolated from the end knot: that one follows the miss
            end = i if x < _KNOTS[0] else i + 1
            self.knots[end] = (left, right)[end - i] * (1.0 + _NEAR * (ratio - 1.0))
        self._reshape()

    def _reshape(self) -> None:
        self._shape, top = [], 0.0
        for size, knot in zip(_KNOTS, self.knots, strict=True):
            if knot is not None:
                top = max(top, knot)
                self._shape.append((size, top))

    def at(self, x: float, line: CostModel) -> float:
        """The curve at size `x`; off its ends the line, scaled (below) or shifted (above) to meet it."""
        shape = self._shape
        if not shape:
            return line.line_cost(x)
        if x <= shape[0][0]:
            size, knot = shape[0]
            return knot * line.line_cost(x) / max(line.line_cost(size), 1e-9)
        if x >= shape[-1][0]:
            size, knot = shape[-1]
            return knot + (x - size) * line.compute_s_per_char
        k = bisect.bisect_left(shape, (x, -math.inf))
        (x0, y0), (x1, y1) = shape[k - 1], shape[k]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def size_for(self, seconds: float, line: CostModel) -> float:
        """The largest size whose cost is at most `seconds` (the inverse of `at`)."""
        shape = self._shape
        if seconds < shape[0][1]:
            low, high = 0.0, shape[0][0]
            for _ in range(30):  # below the first knot the curve is the scaled line: bisect it
                mid = (low + high) / 2
                low, high = (mid, high) if self.at(mid, line) <= seconds else (low, mid)
            return low
        for (x0, y0), (x1, y1) in itertools.pairwise(shape):
            if seconds < y1:  # and y0 <= seconds: the segment rises
                return x0 + (seconds - y0) * (x1 - x0) / (y1 - y0)
        size, knot = shape[-1]
        return size + (seconds - knot) / line.compute_s_per_char


@dataclass
class _Sums:
    """Decayed sums for a least-squares line through (characters ÷ speed, compute seconds)."""

    w: float = 0.0
    x: float = 0.0
    y: float = 0.0
    xx: float = 0.0
    xy: float = 0.0

    def add(self, x: float, y: float, decay: float) -> None:
        self.w = self.w * decay + 1.0
        self.x = self.x * decay + x
        self.y = self.y * decay + y
        self.xx = self.xx * decay + x * x
        self.xy = self.xy * decay + x * y

    def line(self) -> tuple[float, float] | None:
        """(intercept, slope), or None while the sizes seen are too alike to separate the two."""
        spread = self.w * self.xx - self.x * self.x
        if self.w < 2 or spread <= _MIN_SPREAD * self.x * self.x:
            return None
        slope = (self.w * self.xy - self.x * self.y) / spread
        return (self.y - slope * self.x) / self.w, slope


@dataclass
class CostModel:
    """See the module docstring."""

    compute_s_per_char: float
    audio_s_per_char: float = 1.0 / TYPICAL_CHARS_PER_AUDIO_S
    overhead_s: float = 0.0
    # What each further stream in a batched step adds (its frames and sending): measured apart, since a
    # step's pass costs about its longest member's but every member's audio is framed and sent on its own.
    member_s: float = 0.0
    _sums: _Sums = field(default_factory=_Sums, repr=False)
    _misses: deque[float] = field(default_factory=lambda: deque(maxlen=_ERRORS), repr=False)
    _long_pace: float | None = field(default=None, repr=False)  # audio s per compute s of long chunks
    _curve: _Curve = field(default_factory=_Curve, repr=False)

    @classmethod
    def fit(cls, chunks: Iterable[tuple[int, float, float]]) -> CostModel:
        """A model from measured chunks: (characters at speed 1, compute seconds, audio seconds)."""
        measured = list(chunks)
        chars = sum(c for c, _, _ in measured)
        model = cls(
            compute_s_per_char=sum(s for _, s, _ in measured) / chars,
            audio_s_per_char=sum(a for _, _, a in measured) / chars,
        )
        for c, s, a in measured:
            model.learn(c, 1.0, s, a, decay=1.0)
        model._curve.through(((c, s) for c, s, _ in measured), model)
        return model

    @property
    def rtf(self) -> float:
        """Compute seconds per audio second (long chunks): below 1 the worker outpaces one listener."""
        return self.compute_s_per_char / self.audio_s_per_char

    @property
    def capacity(self) -> float:
        """Audio seconds per wall second one worker makes in chunks so long that the fixed cost vanishes."""
        return 1.0 / self.rtf

    def throughput(self) -> float:
        """Audio seconds per compute second of a long text (cut into chunks of MAX_CHUNK_CHARS), the fixed
        cost included: how many real-time listeners the worker feeds (the `tts_worker_capacity` gauge,
        which `tts_load` divides by). As its long chunks measured it (start-up's, then those it served);
        the line's prediction until one was measured."""
        if self._long_pace is not None:
            return self._long_pace
        return self.audio(MAX_CHUNK_CHARS, 1.0) / self.cost(MAX_CHUNK_CHARS, 1.0)

    @property
    def error_factor(self) -> float:
        """How much slower than predicted a chunk may run: the worst actual ÷ predicted cost of the recent
        chunks (each predicted before it was learned), never below 1. A high quantile was not enough: at
        ±10 % noise its misses left gaps at full load on the fake clock (tests/worker/test_scheduler.py)."""
        return max(1.0, *self._misses) if self._misses else _STARTUP_ERROR

    def cost(self, chars: float, speed: float) -> float:
        """Compute seconds of a chunk of `chars` at `speed`: what chunks of about its size measured."""
        x = chars / speed
        return self._curve.at(x, self) if self._curve else self.line_cost(x)

    def line_cost(self, x: float) -> float:
        """The line's cost of a chunk of `x` characters at speed 1 (its fixed part and per-character part)."""
        return self.overhead_s + x * self.compute_s_per_char

    def step_cost(self, chars: float, speed: float, riders: int) -> float:
        """A batched step whose longest chunk is `chars`, carrying `riders` streams besides it."""
        return self.cost(chars, speed) + riders * self.member_s

    def learn_member(self, seconds: float) -> None:
        """Fold in what one member of a batched step cost to frame and send."""
        self.member_s += _EWMA * (seconds - self.member_s)

    def audio(self, chars: float, speed: float) -> float:
        return chars * self.audio_s_per_char / speed

    def chars_for(self, compute_s: float, speed: float) -> int:
        """The most characters one chunk may have to take at most `compute_s`."""
        if math.isinf(compute_s):
            return UNLIMITED
        if self._curve:
            return min(UNLIMITED, int(self._curve.size_for(compute_s, self) * speed))
        return int(max(0.0, compute_s - self.overhead_s) * speed / self.compute_s_per_char)

    def learn(
        self, chars: int, speed: float, compute_s: float, audio_s: float, *, decay: float = _DECAY
    ) -> None:
        """Fold in one synthesized chunk."""
        if chars <= 0 or audio_s <= 0:
            return
        x = chars / speed
        if decay < 1.0:  # a chunk served (`fit` draws the curve through start-up's chunks at once)
            self._misses.append(compute_s / max(self.cost(chars, speed), 1e-9))  # how far did it miss?
            self._curve.learn(x, compute_s, self)
        self._sums.add(x, compute_s, decay)
        if x >= _LONG_CHUNK_CHARS and compute_s > 0:
            pace = audio_s / compute_s
            self._long_pace = (
                pace if self._long_pace is None else self._long_pace + _EWMA * (pace - self._long_pace)
            )
        self.audio_s_per_char += _EWMA * (audio_s / x - self.audio_s_per_char)
        line = self._sums.line()
        if line is not None and line[1] > 0:
            mean_cost = self._sums.y / self._sums.w
            self.overhead_s = min(max(0.0, line[0]), _MAX_FIXED_SHARE * mean_cost)  # never all of it
            self.compute_s_per_char = line[1]
        else:  # sizes too alike: keep the fixed part, follow the rest
            per_char = max(compute_s - self.overhead_s, 0.0) / x
            self.compute_s_per_char += _EWMA * (per_char - self.compute_s_per_char)
