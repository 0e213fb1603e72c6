"""Whose chunk a worker synthesizes next, how big it is, and whether a request may start: pure policy.

Earliest deadline first (`edf`). A stream that has not sent audio yet is due at once; a playing stream's
next chunk is due when the audio already sent, played in real time from its first audio, runs out, minus
a safety margin. A newcomer's first chunk goes ahead of playing streams unless one of them would run dry
while it is made (that one then gets a chunk just large enough to wait out the newcomer's first), but never
later than `max_step_s` after its admission (no newcomer starves). A chunk is
cut so that every other stream stays on time (but never below a minimum chunk while several are behind:
chunks that pay the fixed cost too often would keep them behind); when nobody else needs the worker soon
it grows to the efficient size (the lone-stream plan), and spare capacity builds leads up to `max_lead_s`.
A stream that far ahead of its reader is paused and asks for nothing.

Admission replays the schedule, not a stream count: every admitted stream and the candidate are played
forward as the pick would run them, each chunk costed at the cost model's measured error (lookahead.py),
and the request is admitted if no player runs dry and every newcomer hears its first audio within its
bound (past lateness forgiven). A worker that cannot keep even its own streams gap-free (slower than real
time, or overloaded) still admits a request that is short next to the work it holds, so a long stream
never makes a short one wait for its whole length. What is refused waits in order: overload shows as
queueing for newcomers, not as stutter for everyone.

With an engine that batches (`batch` > 1), a step carries the picked stream and the most urgent others
whose chunks are no longer than its (`pick_batch`): a batched pass costs about its longest member's.

`fifo` is one stream at a time, to the end, in arrival order: the plain LitServe loop's behaviour.

Times are seconds on the caller's clock; audio is seconds of output; costs are compute seconds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..synth.costs import UNLIMITED, CostModel
from ..text.planning import FIRST_CHUNK_CHARS, MAX_CHUNK_CHARS
from .lookahead import Ahead, Lookahead

__all__ = ["Arrivals", "Pick", "Policy", "Scheduler", "StreamView"]

Policy = Literal["edf", "fifo"]

TYPICAL_REQUEST_CHARS = 250  # what a request is assumed to hold before any has been seen
_EWMA = 0.3  # weight of the newest request in the typical size


@dataclass
class StreamView:
    """What the scheduler knows of one stream."""

    key: str
    arrived_s: float
    speed: float = 1.0
    remaining_chars: int = 0  # text still to synthesize
    # A live stream's text still to come, as guessed when it was admitted (a typical request's, less what
    # came): admission counts it, so that a stream waiting for its client's next words holds its place.
    to_come_chars: int = 0
    admitted_s: float | None = None  # when it was admitted (its wait for first audio counts from here)
    first_audio_s: float | None = None  # when its first audio went out
    sent_audio_s: float = 0.0  # audio sent so far
    delivered_audio_s: float = 0.0  # audio its client has taken (backpressure)
    fixed_chars: int | None = None  # a seeded stream keeps its own plan: its next chunk is this big
    plan_chars: int | None = None  # its next chunk in the lone-stream plan (the most it may be)
    cut_in: bool = False  # admitted ahead of streams that could not be kept gap-free anyway
    held: bool = False  # paused by the lead cap, until its reader takes half the lead
    # Audio sent before its player last ran dry (a live stream that waited for text): what it plays now
    # started after that, like a newcomer's.
    base_audio_s: float = 0.0

    @property
    def playing(self) -> bool:
        return self.first_audio_s is not None

    @property
    def finished(self) -> bool:
        return self.remaining_chars <= 0

    def demand_chars(self, now: float) -> int:
        """The text it will still ask the worker for: what it has, and what its client is expected to send
        until it goes quiet (a live stream whose player ran dry with nothing left to say holds no place)."""
        out = self.played_out_s()
        quiet = self.remaining_chars <= 0 and out is not None and out <= now
        return self.remaining_chars + (0 if quiet else self.to_come_chars)

    def buffered_s(self, now: float) -> float:
        """Seconds of audio its player still has, or will have once it has taken what was sent.

        Players start at the first byte and play in real time, but none plays what its client has not
        taken: a client that reads slower than real time is at what it took, and the rest still waits.
        """
        if self.first_audio_s is None:
            return 0.0
        sent = self.sent_audio_s - self.base_audio_s
        return sent - min(now - self.first_audio_s, max(0.0, self.delivered_audio_s - self.base_audio_s))

    def played_out_s(self) -> float | None:
        """When its player runs out of the audio sent so far (played in real time from the first audio);
        None before any audio."""
        if self.first_audio_s is None:
            return None
        return self.first_audio_s + self.sent_audio_s - self.base_audio_s

    def restart(self, now: float) -> None:
        """Its player ran dry and new text came: from now on it is due like a newcomer."""
        self.base_audio_s = self.sent_audio_s
        self.first_audio_s = None
        self.arrived_s = self.admitted_s = now


@dataclass(frozen=True)
class Pick:
    """The stream to synthesize next and the largest chunk (characters) that keeps the others on time."""

    key: str
    max_chars: int


@dataclass
class Arrivals:
    """Requests this worker took lately: how often one comes, how long one is, and how long its first
    chunk came out (cut at a word, it is often shorter than the first budget: its audio runs out sooner)."""

    window_s: float = 60.0
    _times: deque[float] = field(default_factory=deque)
    typical_chars: float = TYPICAL_REQUEST_CHARS
    first_chars: float = FIRST_CHUNK_CHARS

    def add(self, now: float, chars: int) -> None:
        self._times.append(now)
        self.typical_chars += _EWMA * (chars - self.typical_chars)

    def started(self, chars: int) -> None:
        if chars > 0:  # a request that opens with a pause says nothing of its words
            self.first_chars += _EWMA * (chars - self.first_chars)

    def rate(self, now: float) -> float:
        """Requests per second over the window."""
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        return len(self._times) / self.window_s


@dataclass
class Scheduler:
    """The policy with its settings; see the module docstring."""

    cost: CostModel
    policy: Policy = "edf"
    margin_s: float = 1.0  # aim to deliver each chunk this long before the player needs it
    max_lead_s: float = 30.0  # never synthesize further ahead of what the client has taken
    max_active: int = 0  # a cap on streams per worker set by the operator; 0: the demand test decides
    batch: int = 1  # the most streams one step may carry (the engine's batch size)
    first_chunk_chars: int = FIRST_CHUNK_CHARS  # a few words: the first audio should come quickly
    chunk_overheads: float = 10.0  # a chunk cut for the others' sake still costs this many fixed costs
    min_chunk_floor: int = 20  # ...and has at least this many characters (a few words)
    step_firsts: float = 2.0  # while others may need the worker, a chunk costs at most this many first chunks
    own_share: float = 0.8  # a chunk takes at most this share of the audio its own player still has
    likely: float = 0.05  # a step may run long while an arrival during it is less likely than this
    short_share: float = 0.25  # an overloaded worker still admits a request this short next to its work
    refused_steps: float = 4.0  # while a request waits for room, chunks may take this many steps
    arrivals: Arrivals = field(default_factory=Arrivals)

    # --- Deadlines ----------------------------------------------------------------------------------

    def deadline(self, stream: StreamView, now: float) -> float:
        """When the stream's next chunk is due (its arrival, for a stream with no audio yet)."""
        if stream.first_audio_s is None:
            return stream.arrived_s
        return now + stream.buffered_s(now) - self.margin_s

    def paused(self, stream: StreamView) -> bool:
        """`max_lead_s` ahead of what its client took, it waits for the client (backpressure), and goes on
        once the client has taken half of that: a slow reader's stream then asks for the worker in a few
        longer turns, not a chunk at every byte taken."""
        lead = stream.sent_audio_s - stream.delivered_audio_s
        stream.held = lead >= (self.max_lead_s / 2 if stream.held else self.max_lead_s)
        return stream.held

    def eligible(self, stream: StreamView) -> bool:
        return not stream.finished and not self.paused(stream)

    @property
    def min_chunk_chars(self) -> int:
        """The smallest chunk cut for the others' sake: big enough that the fixed cost per chunk stays a
        small share of it (so it depends on this worker's measured costs)."""
        chars = self.cost.chars_for(self.cost.overhead_s * self.chunk_overheads, 1.0)
        return max(self.min_chunk_floor, min(chars, 4 * self.first_chunk_chars))

    @property
    def max_step_s(self) -> float:
        """The longest a chunk may take while others may need the worker: a newcomer that arrives during
        it still hears its first audio within (1 + step_firsts) first-chunk costs."""
        return self.step_firsts * self.cost.cost(self.first_chunk_chars, 1.0)

    def start_by(self, stream: StreamView) -> float:
        """The latest a newcomer's first chunk may start: `max_step_s` after its admission."""
        return (stream.admitted_s if stream.admitted_s is not None else stream.arrived_s) + self.max_step_s

    # --- The next step ------------------------------------------------------------------------------

    def pick(self, now: float, streams: Sequence[StreamView], *, waiting: bool = False) -> Pick | None:
        """The next stream to run and its chunk limit, or None when every stream may wait.

        `waiting`: a request is waiting for room here (taken but not admitted, or queued with no room):
        steps may be longer (`step_cap_s`), since it can only start once the streams here have leads.
        """
        ready = [s for s in streams if self.eligible(s)]
        if not ready:
            return None
        if self.policy == "fifo":
            first = min(ready, key=lambda s: s.arrived_s)
            return Pick(first.key, first.fixed_chars or UNLIMITED)
        newcomers = sorted((s for s in ready if not s.playing), key=self.start_by)
        latest = self._latest_start(newcomers)
        if newcomers and now + self.cost.cost(self.min_chunk_chars, 1.0) > latest:
            chosen = newcomers[0]  # no other chunk fits before the newcomers' bound: no starving
        else:
            chosen = min(ready, key=lambda s: (self.deadline(s, now), s.arrived_s))
            if not chosen.playing:
                protected = self._protect_playing(now, chosen, ready)
                if protected is not chosen:  # just enough for it to wait out the newcomer's first chunk
                    chars = self._max_chars(now, protected, ready, waiting, latest)
                    return Pick(protected.key, min(chars, self._shield_chars(now, protected, chosen)))
        return Pick(chosen.key, self._max_chars(now, chosen, ready, waiting, latest))

    def pick_batch(self, now: float, streams: Sequence[StreamView], *, waiting: bool = False) -> list[Pick]:
        """The streams that ride in the next step, the one `pick` chooses first: a batched step costs about
        what its longest member costs alone, so the others come along as long as their chunks are no longer
        than its chunk, the most urgent first (newcomers get their first chunks together)."""
        leader = self.pick(now, streams, waiting=waiting)
        if leader is None or self.batch <= 1 or self.policy == "fifo":
            return [] if leader is None else [leader]
        picks = [leader]
        first = next(s for s in streams if s.key == leader.key)
        longest = min(leader.max_chars, first.plan_chars or leader.max_chars)  # what the leader will take
        others = sorted(
            (s for s in streams if s.key != leader.key and self.eligible(s)),
            key=lambda s: (self.deadline(s, now), s.arrived_s),
        )
        for stream in others:
            if len(picks) >= self.batch:
                break
            chars = stream.fixed_chars or (self.first_chunk_chars if not stream.playing else longest)
            if chars <= longest:
                picks.append(Pick(stream.key, chars))
        return picks

    def _latest_start(self, newcomers: Sequence[StreamView]) -> float:
        """When the first of `newcomers` (in start-by order) must start so that each, one after another,
        starts within its bound: `max_step_s` after its admission."""
        latest, before = math.inf, 0.0
        for stream in newcomers:
            latest = min(latest, self.start_by(stream) - before)
            before += self._first_cost(stream)
        return latest

    def _protect_playing(self, now: float, newcomer: StreamView, ready: Sequence[StreamView]) -> StreamView:
        """Run a playing stream first if making the newcomer's first chunk would let it run dry."""
        first_cost = self._first_cost(newcomer)
        at_risk = [
            s
            for s in ready
            if s.playing and s.buffered_s(now) - self.margin_s < first_cost + self._next_cost(s)
        ]
        return min(at_risk, key=lambda s: s.buffered_s(now)) if at_risk else newcomer

    def _shield_chars(self, now: float, stream: StreamView, newcomer: StreamView) -> int:
        """The chunk after which `stream`'s player has enough to wait out the newcomer's first chunk and its
        own next one (the test `_protect_playing` failed), at least a few words: a newcomer deferred for a
        playing stream waits one short step, not the longest the others allow."""
        # Audio a character adds to its player, less the compute it costs (the fixed cost apart).
        gain = self.cost.audio(1, stream.speed) - self.cost.compute_s_per_char / stream.speed
        if gain <= 0:  # slower than real time: no chunk builds a lead
            return UNLIMITED
        short = self.margin_s + self._first_cost(newcomer) + self._next_cost(stream) - stream.buffered_s(now)
        return max(self.min_chunk_floor, math.ceil((short + self.cost.overhead_s) / gain))

    def _first_cost(self, stream: StreamView) -> float:
        return self.cost.cost(min(self.first_chunk_chars, stream.remaining_chars), stream.speed)

    def _next_cost(self, stream: StreamView) -> float:
        chars = stream.fixed_chars or self.min_chunk_chars
        return self.cost.cost(min(chars, stream.remaining_chars), stream.speed)

    def step_cap_s(self, now: float, *, waiting: bool) -> float:
        """The longest one chunk may take. While a request waits for room it can only start once the
        streams here have leads, which longer chunks build more cheaply: `refused_steps` steps. Otherwise
        `max_step_s` while an arrival during the step is likely, and unlimited when arrivals are rare (the
        lone-stream plan decides, as FIFO's does)."""
        if waiting:
            return self.max_step_s * self.refused_steps
        rate = self.arrivals.rate(now)
        return math.inf if rate <= 0 else max(self.max_step_s, self.likely / rate)

    def _max_chars(
        self, now: float, chosen: StreamView, ready: Sequence[StreamView], waiting: bool, latest: float
    ) -> int:
        """Cut the chosen stream's chunk so that every other stream is still served in time, and so that it
        lands while the chosen stream's own player still has audio."""
        if chosen.fixed_chars is not None:
            return chosen.fixed_chars
        if chosen.first_audio_s is None:
            return self.first_chunk_chars
        budget_s = min(self.step_cap_s(now, waiting=waiting), latest - now)
        behind = False
        for other in ready:
            if other.key != chosen.key and other.playing:
                slack_s = self.deadline(other, now) - now
                behind = behind or slack_s < 0
                budget_s = min(budget_s, slack_s - self._next_cost(other))
        chars = max(self.min_chunk_chars, self.cost.chars_for(max(0.0, budget_s), chosen.speed))
        # Its own player comes first, whatever the floor for the others' sake: early in a stream this keeps
        # chunks small and growing, like a lone stream's plan; a player that ran dry gets a first-sized
        # chunk, so that it plays again soon. Not while others are behind too: they wait for each other,
        # and chunks that small would pay the fixed cost so often that the worker never catches up.
        own = self.cost.chars_for(chosen.buffered_s(now) * self.own_share, chosen.speed)
        return max(self.min_chunk_chars if behind else self.first_chunk_chars, min(chars, own))

    # --- Admission ---------------------------------------------------------------------------------

    def admits(self, now: float, active: Sequence[StreamView], candidate: StreamView) -> bool:
        """Whether `candidate` may start now (see the module docstring)."""
        running = [s for s in active if s.demand_chars(now) > 0 and not self.paused(s)]
        if not running:
            return True  # alone, a stream gets all there is, whatever the worker's speed
        if self.policy == "fifo" or (self.max_active and len(running) >= self.max_active):
            return False
        if self.feasible(now, [*running, candidate]):
            return True
        if any(s.cut_in for s in running) or self.feasible(now, running):
            return False  # the worker keeps up now and would not with the candidate, or one cut in already
        # Overloaded already (slower than real time, or behind): someone stutters whatever happens, so a
        # request that is short next to the longest stream goes ahead of it, one at a time.
        work = self._work
        candidate.cut_in = work(candidate, now) <= self.short_share * max(work(s, now) for s in running)
        return candidate.cut_in

    def has_room(self, now: float, active: Sequence[StreamView]) -> bool:
        """Whether a typical request could start here now: a worker takes one from the queue only then."""
        typical = StreamView(
            "typical", now, remaining_chars=round(self.arrivals.typical_chars), admitted_s=now
        )
        return self.admits(now, active, typical)

    def feasible(self, now: float, streams: Iterable[StreamView]) -> bool:
        """Whether every stream gets each chunk before its player needs it, its schedule played forward
        on the cost model with its measured error (lookahead.py). Lateness a stream already has is
        forgiven: a player that ran dry counts from now."""
        safety = self.cost.error_factor
        lookahead = Lookahead(
            self.cost,
            safety,
            self.batch,
            self.first_chunk_chars,
            self.min_chunk_chars,
            self.step_cap_s(now, waiting=False),
            self.own_share,
            self.margin_s,
            self.max_lead_s,
        )
        return lookahead.holds(now, [self._ahead(now, s, safety) for s in streams])

    def _ahead(self, now: float, stream: StreamView, safety: float) -> Ahead:
        left = stream.demand_chars(now)
        if stream.playing:
            return Ahead(
                stream.key,
                left,
                stream.speed,
                runs_dry=now + max(0.0, stream.buffered_s(now)),
                next_chars=stream.fixed_chars or stream.plan_chars or MAX_CHUNK_CHARS,
                fixed=stream.fixed_chars is not None,
            )
        first = min(self.first_chunk_chars, left)
        admitted = stream.admitted_s if stream.admitted_s is not None else now
        return Ahead(
            stream.key,
            left,
            stream.speed,
            due=admitted,
            first_by=max(now, admitted + self.max_step_s) + self.cost.cost(first, stream.speed) * safety,
            next_chars=stream.fixed_chars or first,
            fixed=stream.fixed_chars is not None,
        )

    def _compute_per_audio_s(self) -> float:
        """Compute per audio second when chunks are cut to the others' sake (the fixed cost included)."""
        chunk_audio_s = self.cost.audio(self.min_chunk_chars, 1.0)
        return (self.cost.rtf + self.cost.overhead_s / chunk_audio_s) * self.cost.error_factor

    def _work(self, stream: StreamView, now: float) -> float:
        """Compute seconds to finish `stream` (in chunks of `max_step_s`)."""
        return self.cost.audio(stream.demand_chars(now), stream.speed) * self._compute_per_audio_s()

    # --- Accounting ----------------------------------------------------------------------------------

    def arrived(self, now: float, chars: int) -> None:
        """A request was taken from the queue (for the arrival rate and the typical request)."""
        self.arrivals.add(now, chars)

    def started(self, chars: int) -> None:
        """A stream's first chunk went out, of `chars` characters."""
        self.arrivals.started(chars)
