"""What a chunk of speech costs: a fixed part per chunk and a part per character, learned as it runs.

A chunk of `c` characters at speed `v` takes `overhead_s + c / v * compute_s_per_char` of compute and makes
`c / v * audio_s_per_char` seconds of audio. Start-up measures a few chunks (`fit`); every chunk the worker
synthesizes afterwards is folded in (`learn`) by least squares over the recent chunks, so a start-up
measured on a busy machine, or a machine whose speed changes, is corrected within a few chunks. How far
its predictions missed (`error_factor`) is measured too: admission plans with it instead of a fixed slack.

The pace of a long text (`throughput`, the capacity gauge) is what the long chunks measured, not the
line: the recent chunks are often all short (voice agents, one-sentence requests), and on a 2-vCPU Xeon a
line through chunks of 8-60 characters, with their audio per character (edge silence weighs more in a
short chunk), put 360-character chunks 1.2-1.4x faster than they ran.
"""

from __future__ import annotations

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
        return self.overhead_s + chars * self.compute_s_per_char / speed

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
        return int(max(0.0, compute_s - self.overhead_s) * speed / self.compute_s_per_char)

    def learn(
        self, chars: int, speed: float, compute_s: float, audio_s: float, *, decay: float = _DECAY
    ) -> None:
        """Fold in one synthesized chunk."""
        if chars <= 0 or audio_s <= 0:
            return
        x = chars / speed
        if decay < 1.0:  # a chunk served, not start-up's calibration: how far did the model miss?
            self._misses.append(compute_s / max(self.cost(chars, speed), 1e-9))
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
