"""Whose chunk a worker synthesizes next, and whether a waiting stream may start: pure policy, no I/O.

Earliest deadline first (`edf`): a stream that has not sent audio yet is due at once (at its arrival); a
playing stream's next chunk is due when the audio already sent, played in real time from its first audio,
runs out, minus a safety margin. A newcomer's first chunk goes ahead of playing streams unless one of them
would run dry while it is made. A stream more than `max_lead_s` ahead of what its client has taken is
not eligible at all (backpressure). A waiting stream is admitted only if a simulation of the schedule,
with it, leaves every admitted stream gap-free; otherwise it waits, in order, so that overload shows as
queueing for newcomers rather than stutter for everyone.

`fifo` is one stream at a time, to the end, in arrival order: the plain LitServe loop's behaviour.

Times are seconds on the caller's clock; audio is seconds of output; costs are compute seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ..text.planning import FIRST_CHUNK_CHARS

__all__ = ["CostModel", "Pick", "Policy", "Scheduler", "StreamView"]

Policy = Literal["edf", "fifo"]

TYPICAL_CHARS_PER_AUDIO_S = 15.0  # Kokoro at speed 1: about 15 characters per second of speech
_EWMA = 0.3  # weight of the newest measurement


@dataclass
class CostModel:
    """What a worker has measured: a fixed cost per chunk, and compute and audio seconds per character.

    A chunk costs `overhead_s` (the text front, the call) plus compute proportional to the audio it makes,
    which is proportional to characters ÷ speed. The per-character figures are running averages over the
    chunks synthesized so far; the overhead is measured once, at start-up.
    """

    compute_s_per_char: float
    audio_s_per_char: float = 1.0 / TYPICAL_CHARS_PER_AUDIO_S
    overhead_s: float = 0.0

    @property
    def rtf(self) -> float:
        """Compute seconds per audio second (long chunks): below 1 the worker outpaces one listener."""
        return self.compute_s_per_char / self.audio_s_per_char

    @property
    def capacity(self) -> float:
        """Audio seconds per wall second one worker makes: how many real-time listeners it can feed."""
        return 1.0 / self.rtf

    def cost(self, chars: float, speed: float) -> float:
        return self.overhead_s + chars * self.compute_s_per_char / speed

    def audio(self, chars: float, speed: float) -> float:
        return chars * self.audio_s_per_char / speed

    def chars_for(self, compute_s: float, speed: float) -> int:
        """The most characters one chunk may have to take at most `compute_s`."""
        return int(max(0.0, compute_s - self.overhead_s) * speed / self.compute_s_per_char)

    def learn(self, chars: int, speed: float, compute_s: float, audio_s: float) -> None:
        """Fold in one synthesized chunk."""
        if chars <= 0 or audio_s <= 0:
            return
        per_char = max(compute_s - self.overhead_s, 0.0) * speed / chars
        audio_per_char = audio_s * speed / chars
        self.compute_s_per_char += _EWMA * (per_char - self.compute_s_per_char)
        self.audio_s_per_char += _EWMA * (audio_per_char - self.audio_s_per_char)


@dataclass
class StreamView:
    """What the scheduler knows of one stream."""

    key: str
    arrived_s: float
    speed: float = 1.0
    remaining_chars: int = 0  # text still to synthesize
    first_audio_s: float | None = None  # when its first audio went out
    sent_audio_s: float = 0.0  # audio sent so far
    delivered_audio_s: float = 0.0  # audio its client has taken (backpressure)

    @property
    def playing(self) -> bool:
        return self.first_audio_s is not None

    @property
    def finished(self) -> bool:
        return self.remaining_chars <= 0


@dataclass(frozen=True)
class Pick:
    """The stream to synthesize next and the largest chunk (characters) that keeps the others on time."""

    key: str
    max_chars: int


@dataclass
class Scheduler:
    """The policy with its settings; see the module docstring."""

    cost: CostModel
    policy: Policy = "edf"
    margin_s: float = 1.0  # aim to deliver each chunk this long before the player needs it
    max_lead_s: float = 30.0  # never synthesize further ahead of what the client has taken
    max_active: int = 4
    first_chunk_chars: int = FIRST_CHUNK_CHARS  # a few words: the first audio should come quickly
    min_chunk_chars: int = 60  # never cut chunks smaller than this to make room for others
    max_step_s: float = 2.0  # one chunk takes at most this long: the longest a newcomer waits to start
    own_share: float = 0.8  # a chunk takes at most this share of the audio its own player still has
    admission_safety: float = 1.1  # admit only if the schedule holds with chunks this much slower
    sim_chunk_chars: int = 120  # chunk size assumed when simulating future work

    def deadline(self, stream: StreamView) -> float:
        """When the stream's next chunk is due (its arrival, for a stream with no audio yet)."""
        if stream.first_audio_s is None:
            return stream.arrived_s
        return stream.first_audio_s + stream.sent_audio_s - self.margin_s

    def eligible(self, stream: StreamView) -> bool:
        """A stream far ahead of its reader waits for the reader (nor is a finished one run)."""
        if stream.finished:
            return False
        return stream.sent_audio_s - stream.delivered_audio_s < self.max_lead_s

    def pick(self, now: float, streams: Sequence[StreamView]) -> Pick | None:
        """The next stream to run, or None when every active stream is far enough ahead to wait."""
        ready = [s for s in streams if self.eligible(s)]
        if not ready:
            return None
        if self.policy == "fifo":
            first = min(ready, key=lambda s: s.arrived_s)
            return Pick(first.key, 1 << 30)
        chosen = min(ready, key=lambda s: (self.deadline(s), s.arrived_s))
        if not chosen.playing:
            chosen = self._protect_playing(now, chosen, ready)
        return Pick(chosen.key, self._max_chars(now, chosen, ready))

    def _protect_playing(self, now: float, newcomer: StreamView, ready: Sequence[StreamView]) -> StreamView:
        """Run a playing stream first if making the newcomer's first chunk would let it run dry."""
        first_cost = self.cost.cost(min(self.first_chunk_chars, newcomer.remaining_chars), newcomer.speed)
        at_risk = [s for s in ready if s.playing and self.deadline(s) - now < first_cost + self._next_cost(s)]
        return min(at_risk, key=self.deadline) if at_risk else newcomer

    def _next_cost(self, stream: StreamView) -> float:
        return self.cost.cost(min(self.min_chunk_chars, stream.remaining_chars), stream.speed)

    def _max_chars(self, now: float, chosen: StreamView, ready: Sequence[StreamView]) -> int:
        """Cut the chosen stream's chunk so that every other stream can still be served in time, and so
        that it lands while the chosen stream's own player still has audio; audio arrives when its chunk
        is done."""
        if chosen.first_audio_s is None:
            return self.first_chunk_chars
        others = [s for s in ready if s.key != chosen.key]
        budget_s = self.max_step_s
        if others:
            slack = min(self.deadline(s) - now - self._next_cost(s) for s in others)
            budget_s = min(slack, self.max_step_s)
        chars = max(self.min_chunk_chars, self.cost.chars_for(max(0.0, budget_s), chosen.speed))
        # Its own player comes first, whatever the floor for the others' sake: early in a stream (a second
        # of audio sent) this keeps chunks small and growing, like a lone stream's plan; a player that ran
        # dry gets a first-sized chunk, so that it plays again soon.
        buffered_s = chosen.first_audio_s + chosen.sent_audio_s - now
        own = self.cost.chars_for(buffered_s * self.own_share, chosen.speed)
        return max(self.first_chunk_chars, min(chars, own))

    # --- Admission ---------------------------------------------------------------------------------

    def admits(self, now: float, active: Sequence[StreamView], candidate: StreamView) -> bool:
        """Whether `candidate` may start now without making an admitted stream (or itself) run dry."""
        running = [s for s in active if not s.finished]
        if not running:
            return True  # alone, a stream gets all there is, whatever the worker's speed
        if self.policy == "fifo" or len(running) >= self.max_active:
            return False
        return self.worst_underrun(now, [*running, candidate]) <= 0.0

    def worst_underrun(self, now: float, streams: Iterable[StreamView]) -> float:
        """Play the schedule forward with this policy and the cost model (chunks `admission_safety` times
        slower than measured, readers keeping up); the longest any player would wait for audio."""
        sims = [replace(s, delivered_audio_s=s.sent_audio_s) for s in streams if not s.finished]
        clock, worst = now, 0.0
        while sims:
            pick = self.pick(clock, sims)
            if pick is None:
                break
            sim = next(s for s in sims if s.key == pick.key)
            chars = min(pick.max_chars, self.sim_chunk_chars, sim.remaining_chars)
            clock += self.cost.cost(chars, sim.speed) * self.admission_safety
            if sim.first_audio_s is None:
                sim.first_audio_s = clock
            else:
                worst = max(worst, clock - (sim.first_audio_s + sim.sent_audio_s))
            sim.sent_audio_s += self.cost.audio(chars, sim.speed)
            sim.delivered_audio_s = sim.sent_audio_s
            sim.remaining_chars -= chars
            if sim.finished:
                sims.remove(sim)
        return worst

    def load(self, active: Sequence[StreamView], waiting: int) -> float:
        """Demand ÷ capacity: streams that want real-time audio over the streams this worker can feed."""
        wanting = sum(1 for s in active if not s.finished) + waiting
        return wanting / self.cost.capacity
