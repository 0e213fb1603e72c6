"""Figure 10: the server with each engine variant against the bare pipeline, side by side in one phase.

The default server (figures 1-2) runs `--engine auto` with the edge silence trimmed; this phase starts one
more per variant (`--engine torch`, `--no-trim-silence`) and interleaves, per repetition, a bare pass and a
request on it, for the one-sentence text (time to first audio) and the long text (real-time factor).
Figures 1-2 give the same for the default engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .latency import timed_request
from .plan import Plan
from .processes import Service

if TYPE_CHECKING:
    from .baseline import BarePipeline

__all__ = ["engine_of", "measure_engine", "worker_capacity"]

SHORT_REPS = 3


def engine_of(server: Service) -> str | None:
    """The engine a tts-api server's workers run, from the `engine` label of its capacity gauge."""
    assert server.metrics is not None
    for key in server.metrics.scrape():
        if key.startswith("tts_worker_capacity{") and 'engine="' in key:
            return key.split('engine="', 1)[1].split('"', 1)[0]
    return None


def worker_capacity(server: Service) -> float | None:
    """Audio seconds per second the server's workers measured themselves at (tts_worker_capacity, summed)."""
    assert server.metrics is not None
    value = server.metrics.scrape().get("tts_worker_capacity")
    return None if value is None else float(value)


def measure_engine(server: Service, bare: BarePipeline, plan: Plan) -> dict[str, Any]:
    """Short-text first audio and long-text real-time factor, each beside bare passes."""
    short, long = plan.texts["short"], plan.texts["long"]
    runs: dict[str, list[dict[str, Any]]] = {"short": [], "short_bare": [], "long": [], "long_bare": []}
    for _ in range(SHORT_REPS):
        server.wait_idle()
        runs["short_bare"].append(bare.synthesize(short).record())
        runs["short"].append(timed_request(server, short, "pcm"))
    server.wait_idle()
    runs["long_bare"].append(bare.synthesize(long).record())
    runs["long"].append(timed_request(server, long, "pcm"))
    return {"engine": engine_of(server), **runs}
