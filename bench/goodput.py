"""Figure 7: goodput. Listeners served well per worker, deadline-first (`edf`) beside one-at-a-time (`fifo`).

Three workers: the real engine as a user starts it, and the emulated engine (`--engine emulated:N`) that
feeds 8 and 32 real-time listeners, standing for a bigger CPU or a GPU. For each worker and policy, on a
fresh server: a lone stream (its first audio sets what "good" allows), a burst (8 on the real engine,
4 in the quick plan; 2N on `emulated:N`), and open-loop Poisson arrivals at fractions of capacity, the
same seeded arrivals for both policies. Capacity is the lone stream's measured pace, which the fifo burst
measures (one stream at a time, each cut as it would be alone): on `emulated:N` it is below N, since a
15-s text's first chunks are short and each pays the fixed cost (N is its pace in long chunks only). Per
run: good share, first audio, the largest underrun, 503s, and the server tree's CPU seconds; per server,
the longest any admitted stream waited for its first audio and the bound the worker holds it to. On the
real engine, also cancellation under load.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .listeners import burst, cancellation_under_load, good_first_audio_s, listen, open_loop
from .processes import CpuMeter, Service

__all__ = ["Scenario", "measure_goodput", "servers"]

POLICIES = ("fifo", "edf")  # fifo first: on the real engine its burst measures the worker's capacity
EMULATED_FIRST_AUDIO_FLOOR_S = 1.0  # a lone emulated stream hears audio in milliseconds


@dataclass(frozen=True)
class Scenario:
    """One kind of worker under test."""

    name: str
    args: tuple[str, ...]  # server flags beside --scheduler
    capacity: float | None  # real-time listeners it feeds; None: measured (the fifo burst's audio s per s)
    burst: int  # listeners sent at once
    first_audio_floor_s: float
    duration_s: float  # seconds of arrivals per load
    cancellation: bool = False

    def texts(self, texts: tuple[str, ...], n: int) -> list[str]:
        return list(itertools.islice(itertools.cycle(texts), n))


def scenarios(
    plan_emulated: tuple[str, ...], duration_s: float, emulated_duration_s: float, real_burst: int
) -> list[Scenario]:
    """The real engine, then each emulated worker of the plan (`emulated:N`)."""
    real = Scenario("real engine", (), None, real_burst, 0.0, duration_s, cancellation=True)
    emulated = [
        Scenario(
            engine,
            ("--engine", engine),
            None,
            2 * int(float(engine.split(":")[1])),
            EMULATED_FIRST_AUDIO_FLOOR_S,
            emulated_duration_s,
        )
        for engine in plan_emulated
    ]
    return [real, *emulated]


def servers(scenario: Scenario) -> list[tuple[str, tuple[str, ...]]]:
    """The servers `measure_goodput` asks for, in order: (name, flags), one per policy."""
    name = scenario.name.replace(":", "-").replace(" ", "-")
    return [(f"{name}-{policy}", (*scenario.args, "--scheduler", policy)) for policy in POLICIES]


def measure_goodput(
    scenario: Scenario,
    texts: tuple[str, ...],
    loads: tuple[float, ...],
    start: Callable[[str, tuple[str, ...]], Service],
) -> dict[str, Any]:
    """Every run of `scenario` under both policies; `start(name, flags)` gives a ready, warmed-up server."""
    result: dict[str, Any] = {"capacity_audio_s_per_s": scenario.capacity, "policies": {}}
    for policy, (name, flags) in zip(POLICIES, servers(scenario), strict=True):
        server = start(name, flags)
        try:
            runs = _runs(server, scenario, texts, loads, result["capacity_audio_s_per_s"])
        finally:
            server.stop()
        result["capacity_audio_s_per_s"] = result["capacity_audio_s_per_s"] or runs["burst"]["audio_s_per_s"]
        result["policies"][policy] = runs
    return result


def _runs(
    server: Service,
    scenario: Scenario,
    texts: tuple[str, ...],
    loads: tuple[float, ...],
    capacity: float | None,
) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    lone = listen(server.url, texts[0])
    bound = good_first_audio_s(lone.first_audio_s or 1.0, scenario.first_audio_floor_s)
    runs["lone"] = lone.record()
    meter = _meter(server)
    runs["burst"] = {**burst(server, scenario.texts(texts, scenario.burst), bound), **meter()}
    capacity = capacity or runs["burst"]["audio_s_per_s"]
    audio = [x["audio_s"] for x in runs["burst"]["listeners"] if x["audio_s"]]
    mean_audio_s = sum(audio) / len(audio)
    runs["open_loop"] = {}
    for index, load in enumerate(loads):
        rate = load * capacity / mean_audio_s
        meter = _meter(server)
        run = open_loop(server, list(texts), rate, scenario.duration_s, bound, seed=index)
        runs["open_loop"][f"{load:.0%}"] = {"load": load, "arrivals_per_s": rate, **run, **meter()}
    if scenario.cancellation:
        runs["cancellation_under_load"] = cancellation_under_load(server, list(texts), capacity)
    runs["first_chunk_wait"] = _first_chunk_wait(server)
    return runs


def _meter(server: Service) -> Callable[[], dict[str, float]]:
    """Start counting the server's CPU seconds (once it is idle); call the result when the run is over."""
    server.wait_idle()
    meter = CpuMeter(server.tree())

    def read() -> dict[str, float]:
        server.wait_idle()
        return {"server_cpu_s": meter.read(server.tree())}

    return read


def _first_chunk_wait(server: Service) -> dict[str, float | None]:
    """The longest wait from admission to first audio any worker saw, and the bound it is held to."""
    assert server.metrics is not None
    values = server.metrics.scrape()
    worst = [v for k, v in values.items() if k.startswith("tts_first_chunk_wait_max_seconds{")]
    bounds = [v for k, v in values.items() if k.startswith("tts_first_chunk_bound_seconds{")]
    return {"worst_s": max(worst, default=None), "bound_s": max(bounds, default=None)}
