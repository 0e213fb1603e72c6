"""Whether a worker's streams all stay on time: their schedule played forward on the cost model.

Admission asks this with the candidate among the streams (scheduler.py). The worker is replayed as the pick
runs it, deadline first and one chunk at a time: a stream with no audio yet is due when it was admitted and
must hear its first audio by its bound (the pick's aging rule); a playing stream is due when its player runs
dry, and its chunks grow as its plan does (each as large as all before it, at most a step's work while others
share the worker, never more than its own player has left to cover); a stream `max_lead_s` ahead waits. With
an engine that batches, a step also carries the most urgent others, each with a chunk no longer than the
first's, and costs what that one costs alone plus each rider's own work (the cost model's `member_s`). Every
chunk costs what the cost model says times the measured error of its predictions. The schedule holds if no
player runs dry and no newcomer misses its bound. Where a stream's turn comes after another stream's, the
replay may be one chunk off the pick (near the margin the pick's cuts flip), so there it must land a guard
early (a first chunk's cost, at most half the margin) and its smallest chunk must fit after one more of
another's: without that, streams on a fake clock ran dry by 0.1-0.4 s at full load. This is the deadline-first
schedule itself, not a bound on it: a test with fixed margins and a fluid demand refused newcomers that the
schedule had room for (17 % of listeners good on `emulated:8` at 80 % load, where a plain deadline-first
worker serves ~85 % well).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..synth.costs import CostModel
from ..text.planning import MAX_CHUNK_CHARS

__all__ = ["Ahead", "Lookahead"]

MAX_CHUNKS = 20_000  # a schedule that long without a gap is taken to hold (hours of audio)


@dataclass
class Ahead:
    """One stream as the look-ahead sees it; times on the caller's clock."""

    key: str
    left_chars: int
    speed: float = 1.0
    runs_dry: float | None = None  # when its player runs out of what it has; None before its first audio
    due: float = 0.0  # a newcomer: when it was admitted (its place in the order)
    first_by: float = math.inf  # a newcomer: the latest its first audio may come
    next_chars: int = 0  # its next chunk in its plan
    fixed: bool = False  # a seeded stream keeps its own plan


@dataclass(frozen=True)
class Lookahead:
    """The replay's settings, from the scheduler's (see its fields of the same names)."""

    cost: CostModel
    safety: float  # chunks cost this many times what the model says
    batch: int  # the most streams one step carries
    first_chunk_chars: int
    min_chunk_chars: int
    step_s: float  # the most one chunk may take while other streams share the worker
    own_share: float
    margin_s: float
    max_lead_s: float

    def holds(self, now: float, streams: Iterable[Ahead]) -> bool:
        """Whether every stream gets each chunk before its player needs it (see the module docstring)."""
        newcomers: list[tuple[float, int, Ahead]] = []
        playing: list[tuple[float, int, Ahead]] = []
        paused: list[tuple[float, int, Ahead]] = []  # far ahead of its player: (when it may run again, …)
        for index, stream in enumerate(s for s in streams if s.left_chars > 0):
            if stream.runs_dry is not None:  # lateness it has even alone is forgiven: it cannot be undone
                first_s = self._cost(min(self.first_chunk_chars, stream.left_chars), stream)
                stream.runs_dry = max(stream.runs_dry, now + first_s + self._guard(stream))
            self._queue(newcomers, playing, paused, index, stream, now)
        clock = now
        previous: Ahead | None = None
        for _ in range(MAX_CHUNKS):
            while paused and paused[0][0] <= clock:
                _, index, stream = heapq.heappop(paused)
                heapq.heappush(playing, (stream.runs_dry or clock, index, stream))
            if not newcomers and not playing:
                if not paused:
                    return True
                clock = paused[0][0]
                continue
            _, index, stream = heapq.heappop(self._which(newcomers, playing, clock))
            guard = 0.0
            if stream.runs_dry is not None and previous not in (None, stream):
                # Had one more chunk of another stream run first, its smallest chunk must still land.
                floor_s = self._cost(min(self.first_chunk_chars, stream.left_chars), stream)
                if clock + self._guard(stream) + floor_s > stream.runs_dry:
                    return False
                # Near the margin the pick's cuts flip (others "behind" or not), and its chunks of the
                # others may be larger than replayed: a stream there must land a guard early.
                if stream.runs_dry - clock < 2 * self.margin_s:
                    guard = self._guard(stream)
            previous = stream
            chars = self._chunk(stream, clock, playing, alone=not newcomers and not playing and not paused)
            riders = self._riders(newcomers, playing, chars)
            # A batch's pass costs its longest member; each rider adds its own work (its frames, sending).
            clock += self.cost.step_cost(chars, stream.speed, len(riders)) * self.safety
            for rider, rider_index, rider_chars, rider_guard in [(stream, index, chars, guard), *riders]:
                if not self._lands(rider, rider_chars, clock, rider_guard):
                    return False
                if rider.left_chars > 0:
                    self._queue(newcomers, playing, paused, rider_index, rider, clock)
        return True

    def _riders(
        self, newcomers: list[tuple[float, int, Ahead]], playing: list[tuple[float, int, Ahead]], chars: int
    ) -> list[tuple[Ahead, int, int, float]]:
        """The streams that come along in a batched step whose longest chunk is `chars`: the most urgent,
        newcomers first, each with a chunk no longer than that (pick_batch's rule)."""
        riders: list[tuple[Ahead, int, int, float]] = []
        skipped: list[tuple[float, int, Ahead]] = []
        while len(riders) < self.batch - 1 and (newcomers or playing):
            entry = heapq.heappop(newcomers if newcomers else playing)
            rider = entry[2]
            own = min(rider.next_chars or self.first_chunk_chars, rider.left_chars)
            rider_chars = own if rider.runs_dry is None or rider.fixed else min(own, chars)
            if rider_chars > chars:
                skipped.append(entry)
                continue
            riders.append((rider, entry[1], rider_chars, 0.0))
        for entry in skipped:
            heapq.heappush(newcomers if entry[2].runs_dry is None else playing, entry)
        return riders

    def _lands(self, stream: Ahead, chars: int, clock: float, guard: float) -> bool:
        """Deliver `chars` of `stream` at `clock`; False if its player ran dry first (within `guard`) or a
        newcomer's first audio came past its bound."""
        if stream.runs_dry is None:
            if clock > stream.first_by:
                return False
            stream.runs_dry = clock
        elif clock > stream.runs_dry - guard:
            return False
        stream.runs_dry += self.cost.audio(chars, stream.speed)
        stream.left_chars -= chars
        if not stream.fixed:
            stream.next_chars = min(MAX_CHUNK_CHARS, stream.next_chars + chars)
        return True

    def _queue(
        self,
        newcomers: list[tuple[float, int, Ahead]],
        playing: list[tuple[float, int, Ahead]],
        paused: list[tuple[float, int, Ahead]],
        index: int,
        stream: Ahead,
        clock: float,
    ) -> None:
        if stream.runs_dry is None:
            heapq.heappush(newcomers, (stream.due, index, stream))
        elif stream.runs_dry - clock >= self.max_lead_s:  # held until its reader took half the lead
            heapq.heappush(paused, (stream.runs_dry - self.max_lead_s / 2, index, stream))
        else:
            heapq.heappush(playing, (stream.runs_dry, index, stream))

    def _which(
        self, newcomers: list[tuple[float, int, Ahead]], playing: list[tuple[float, int, Ahead]], clock: float
    ) -> list[tuple[float, int, Ahead]]:
        """The queue whose head runs next: a newcomer first, unless a playing stream would run dry while its
        first chunk is made, and never past the newcomer's bound (the pick's rules)."""
        if not newcomers:
            return playing
        if not playing:
            return newcomers
        newcomer, dry = newcomers[0][2], playing[0][2]
        first_s = self._cost(min(self.first_chunk_chars, newcomer.left_chars), newcomer)
        next_s = self._cost(min(self.min_chunk_chars, dry.left_chars), dry)
        at_risk = (dry.runs_dry or clock) - self.margin_s - clock < first_s + next_s
        late = clock + self._cost(self.min_chunk_chars, newcomer) > newcomer.first_by - first_s
        return playing if at_risk and not late else newcomers

    def _chunk(
        self, stream: Ahead, clock: float, playing: list[tuple[float, int, Ahead]], *, alone: bool
    ) -> int:
        """Its next chunk as the pick would cut it: within what the next stream due can spare, down to a
        minimum chunk, and within what its own player has left."""
        chars = stream.next_chars or self.first_chunk_chars
        if stream.runs_dry is not None and not stream.fixed:
            budget_s = math.inf if alone else self.step_s
            behind = False
            if playing:
                other = playing[0][2]
                slack_s = (other.runs_dry or clock) - self.margin_s - clock
                behind = slack_s < 0
                budget_s = min(
                    budget_s, slack_s - self._cost(min(self.min_chunk_chars, other.left_chars), other)
                )
            cut = max(self.min_chunk_chars, self.cost.chars_for(max(0.0, budget_s), stream.speed))
            own = self.cost.chars_for((stream.runs_dry - clock) * self.own_share, stream.speed)
            floor = self.min_chunk_chars if behind else self.first_chunk_chars
            chars = min(chars, max(floor, min(cut, own)))
        return max(1, min(chars, stream.left_chars))

    def _guard(self, stream: Ahead) -> float:
        """How early its chunk must land when another stream ran before it (see the module docstring)."""
        return min(self._cost(self.first_chunk_chars, stream), self.margin_s / 2)

    def _cost(self, chars: int, stream: Ahead) -> float:
        return self.cost.cost(chars, stream.speed) * self.safety
