"""The yardstick for admission: a plain deadline-first worker with no admission test, simulated.

Fluid and exact: a stream is its audio (seconds), cut into chunks that double from `first_audio_s`; a chunk
of `a` audio seconds costs `overhead_s + a / capacity` of the worker; the worker always runs the stream
whose player runs dry first (a stream with no audio yet is due at its arrival), skips a stream whose lead
over its player reached `max_lead_s`, and admits everyone at once. Players start at their first audio,
play in real time and wait when they run dry (an underrun). What share of listeners it serves well, on the
same arrivals, is what the real scheduler (worker/scheduler.py) is held to, in the tests on a fake clock
(tests/worker/) and in `make bench` against real servers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Heard", "Worker", "good_share", "poisson_audio", "simulate"]

GOOD_UNDERRUN_S = 0.1


@dataclass(frozen=True)
class Worker:
    """What one step costs and how streams are cut, in audio seconds."""

    capacity: float  # audio seconds per compute second, in long chunks
    overhead_s: float = 0.02  # compute per chunk, whatever its size
    first_audio_s: float = 1.5  # the first chunk's audio; each next one is as long as all before it
    max_chunk_audio_s: float = 24.0
    max_lead_s: float = 30.0

    def cost(self, audio_s: float) -> float:
        return self.overhead_s + audio_s / self.capacity


@dataclass
class Heard:
    """One listener: seconds from its arrival to its first audio, and its longest underrun."""

    arrived_s: float
    audio_s: float
    first_audio_s: float = math.inf
    worst_underrun_s: float = 0.0

    def good(self, first_audio_bound_s: float) -> bool:
        return self.first_audio_s <= first_audio_bound_s and self.worst_underrun_s <= GOOD_UNDERRUN_S


@dataclass
class _Stream:
    heard: Heard
    sent_s: float = 0.0
    next_s: float = 0.0
    runs_dry: float = -math.inf  # when its player runs out of what it was sent

    @property
    def left_s(self) -> float:
        return self.heard.audio_s - self.sent_s

    def deadline(self) -> float:
        return self.heard.arrived_s if self.sent_s == 0 else self.runs_dry

    def lead(self, now: float) -> float:
        return self.runs_dry - now if self.sent_s else 0.0


def simulate(worker: Worker, arrivals: Sequence[tuple[float, float]]) -> list[Heard]:
    """Every listener of `arrivals` ((time, audio seconds), any order) as the deadline-first worker serves."""
    pending = sorted(arrivals)
    streams: list[_Stream] = []
    heard: list[Heard] = []
    now = 0.0
    while pending or streams:
        while pending and pending[0][0] <= now:
            at, audio_s = pending.pop(0)
            heard.append(Heard(at, audio_s))
            streams.append(_Stream(heard[-1], next_s=worker.first_audio_s))
        ready = [s for s in streams if s.lead(now) < worker.max_lead_s]
        if not ready:  # every stream is far enough ahead: wait for an arrival or for a player to catch up
            wake = [s.runs_dry - worker.max_lead_s for s in streams] + [at for at, _ in pending[:1]]
            now = max(now, min(wake)) + 1e-9
            continue
        stream = min(ready, key=lambda s: (s.deadline(), s.heard.arrived_s))
        chunk_s = min(stream.next_s, stream.left_s)
        now += worker.cost(chunk_s)
        _deliver(stream, chunk_s, now)
        stream.next_s = min(worker.max_chunk_audio_s, stream.sent_s)
        if stream.left_s <= 1e-9:
            streams.remove(stream)
    return heard


def _deliver(stream: _Stream, chunk_s: float, now: float) -> None:
    heard = stream.heard
    if stream.sent_s == 0:
        heard.first_audio_s = now - heard.arrived_s
        stream.runs_dry = now
    elif now > stream.runs_dry:
        heard.worst_underrun_s = max(heard.worst_underrun_s, now - stream.runs_dry)
        stream.runs_dry = now
    stream.runs_dry += chunk_s
    stream.sent_s += chunk_s


def good_share(heard: Sequence[Heard], first_audio_bound_s: float) -> float:
    """The share of listeners served well: first audio within the bound, no underrun over 0.1 s."""
    return sum(h.good(first_audio_bound_s) for h in heard) / len(heard) if heard else 1.0


def poisson_audio(
    rate_per_s: float, duration_s: float, audio_s: Sequence[float], seed: int
) -> list[tuple[float, float]]:
    """Seeded open-loop arrivals: (time, audio seconds), lengths taken in turn."""
    rng = random.Random(seed)
    arrivals: list[tuple[float, float]] = []
    at = rng.expovariate(rate_per_s)
    while at < duration_s:
        arrivals.append((at, audio_s[len(arrivals) % len(audio_s)]))
        at += rng.expovariate(rate_per_s)
    return arrivals
