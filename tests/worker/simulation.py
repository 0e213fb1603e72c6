"""A worker on a fake clock: the real Scheduler deciding, a cost model standing in for synthesis.

It follows what the loop does (worker/loop.py): take the oldest queued requests when there is room, admit
them when the scheduler says so (up to a batch's worth per step), run the step the scheduler picks (a
batched step costs what its longest member costs alone, plus the truth's `member_s` for each other one),
cut within the lone-stream plan's budget
(text/planning.py's Growth), and play each stream in a player that starts at its first audio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tts_api.synth.costs import CostModel
from tts_api.text.planning import Growth
from tts_api.worker.scheduler import Scheduler, StreamView

GOOD_FIRST_AUDIO_FACTOR = 3.0
GOOD_UNDERRUN_S = 0.1


@dataclass
class Outcome:
    """One request as its listener heard it (seconds from its arrival)."""

    key: str
    arrived_s: float
    chars: int
    admitted_s: float | None = None
    first_audio_s: float | None = None
    # What the pick promises an admitted newcomer: a step, then its first chunk (and half of another: a chunk
    # for a stream about to run dry may be first-sized even when the step has less room), in the model's
    # seconds as of its admission, stretched by how much the model's predictions missed by its first audio.
    first_audio_bound_s: float = 0.0
    worst_gap_s: float = 0.0
    done_s: float | None = None

    def good(self, lone_first_audio_s: float) -> bool:
        return (
            self.first_audio_s is not None
            and self.first_audio_s <= GOOD_FIRST_AUDIO_FACTOR * lone_first_audio_s
            and self.worst_gap_s <= GOOD_UNDERRUN_S
        )


@dataclass
class _Growth:
    """Growth's budgets for chunks counted in characters (the simulation has no text)."""

    plan: Growth = field(default_factory=Growth)
    first: int = 0
    spoken: int = 0

    def spoke(self, chars: int) -> None:
        self.first = self.first or chars
        self.spoken += chars
        self.plan.budget = min(self.plan.cap, max(self.plan.first, self.first + self.spoken))


@dataclass
class Simulation:
    """Requests (arrival, characters) through one worker; `noise` makes real costs differ from the model."""

    policy: Scheduler
    truth: CostModel
    noise: float = 0.0
    seed: int = 0
    now: float = 0.0
    compute_s: float = 0.0
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def run(self, requests: list[tuple[float, int]], until_s: float = 10_000.0) -> list[Outcome]:
        rng = random.Random(self.seed)
        queue = [(at, f"r{i}", chars) for i, (at, chars) in enumerate(sorted(requests))]
        streams: dict[str, StreamView] = {}
        growth: dict[str, _Growth] = {}
        waiting: StreamView | None = None
        while (queue or streams or waiting) and self.now < until_s:
            # As the loop does: take and admit what fits before the step (up to a batch's worth of streams).
            for _ in range(self.policy.batch):
                views = list(streams.values())
                due = waiting is None and queue and queue[0][0] <= self.now
                if due and (not streams or self.policy.has_room(self.now, views)):
                    at, key, chars = queue.pop(0)
                    self.outcomes[key] = Outcome(key, at, chars)
                    self.policy.arrived(self.now, chars)
                    waiting = StreamView(key, self.now, remaining_chars=chars)
                if waiting is None or not self.policy.admits(self.now, views, waiting):
                    break
                waiting.admitted_s = self.now
                self.outcomes[waiting.key].admitted_s = self.now - self.outcomes[waiting.key].arrived_s
                first_s = self.policy.cost.cost(self.policy.first_chunk_chars, 1.0)
                self.outcomes[waiting.key].first_audio_bound_s = self.policy.max_step_s + 1.5 * first_s
                streams[waiting.key], growth[waiting.key], waiting = waiting, _Growth(), None
            views = list(streams.values())
            queued = waiting is not None or bool(queue and queue[0][0] <= self.now)
            picks = self.policy.pick_batch(self.now, views, waiting=queued)
            if not picks:
                self.now = min([self.now + 0.05, *(at for at, _, _ in queue[:1] if at > self.now)])
                continue
            # A step costs what its longest member costs alone (a GPU's batched pass; one member on a CPU).
            sizes = {
                p.key: max(1, min(p.max_chars, growth[p.key].plan.budget, streams[p.key].remaining_chars))
                for p in picks
            }
            longest = max(sizes, key=lambda key: sizes[key])
            leader = streams[longest]
            riders = len(sizes) - 1
            spent = self.truth.cost(sizes[longest], leader.speed) * (1 + rng.uniform(-self.noise, self.noise))
            self.now += spent + riders * self.truth.member_s
            self.compute_s += spent + riders * self.truth.member_s
            self.policy.cost.learn(
                sizes[longest], leader.speed, spent, self.truth.audio(sizes[longest], leader.speed)
            )
            if riders:  # the loop measures what each member of a batch adds (worker/runtime.py)
                self.policy.cost.learn_member(self.truth.member_s)
            for key, chars in sizes.items():
                stream, plan = streams[key], growth[key]
                self._deliver(stream, chars)
                plan.spoke(chars)
                stream.plan_chars = plan.plan.budget
                if stream.finished:
                    del streams[stream.key]
                    self.outcomes[stream.key].done_s = self.now - self.outcomes[stream.key].arrived_s
        return list(self.outcomes.values())

    def _deliver(self, stream: StreamView, chars: int) -> None:
        outcome = self.outcomes[stream.key]
        if stream.first_audio_s is None:
            stream.first_audio_s = self.now
            self.policy.started(chars)
            outcome.first_audio_s = self.now - outcome.arrived_s
            outcome.first_audio_bound_s *= self.policy.cost.error_factor
        else:
            outcome.worst_gap_s = max(
                outcome.worst_gap_s, self.now - (stream.first_audio_s + stream.sent_audio_s)
            )
        stream.sent_audio_s += self.truth.audio(chars, stream.speed)
        stream.delivered_audio_s = stream.sent_audio_s  # a reader that keeps up
        stream.remaining_chars -= chars


def poisson(rate_per_s: float, duration_s: float, sizes: list[int], seed: int) -> list[tuple[float, int]]:
    """Seeded open-loop arrivals: (time, characters), sizes taken in turn."""
    rng = random.Random(seed)
    arrivals, at = [], rng.expovariate(rate_per_s)
    while at < duration_s:
        arrivals.append((at, sizes[len(arrivals) % len(sizes)]))
        at += rng.expovariate(rate_per_s)
    return arrivals
