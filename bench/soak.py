"""`python -m bench.soak [--requests 1000] [--model-dir DIR]` (`make soak`): one server, many mixed requests.

Every format, streamed and whole, SSE and NDJSON events, bad input, longer texts, requests abandoned
while queued and mid-stream, four at a time. After a warm-up of 100 such requests, and after the run
(idle, settled): the process tree's RSS and open file descriptors. Pass: RSS growth < 50 MB,
descriptors back to baseline, no valid request failed. Writes bench/results/soak-<time>.json and
prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from tts_api.formats import RESPONSE_FORMATS
from tts_api.settings import Settings

from .client import VOICE, Stream
from .machine import describe_machine
from .processes import ROOT, Service
from .texts import MEDIUM, MEMORY_PHRASES

__all__ = ["main"]

MAX_RSS_GROWTH_MIB = 50.0
CONCURRENCY = 4
WARM_UP = 100  # requests before the "before" measurement
SETTLE_S = 3.0
BAD_BODIES = (
    {"input": ""},
    {"input": "Hello.", "voice": "xx_nobody"},
    {"input": "Hello.", "speed": 9},
    {"input": "Hello.", "response_format": "ogg"},
    {"input": "Wait [pause:abc] here."},
)


@dataclass(frozen=True)
class Job:
    """One soak request and what a correct answer to it is."""

    body: dict[str, Any]
    kind: str  # for the summary: "audio", "events", "whole", "bad", "abandon-queued", "abandon-mid"
    expect: int  # status
    abandon: str = "never"


def jobs(count: int) -> list[Job]:
    """A fixed mix: every format in each kind, in an order that interleaves the kinds."""
    plan: list[Job] = []
    for i in range(count):
        text = MEDIUM if i % 25 == 0 else MEMORY_PHRASES[i % len(MEMORY_PHRASES)]
        fmt = RESPONSE_FORMATS[i % len(RESPONSE_FORMATS)]
        body = {"model": "kokoro", "input": text, "voice": VOICE, "response_format": fmt}
        slot = i % 10
        if slot in (0, 1, 2, 3):
            plan.append(Job(body, "audio", 200))
        elif slot == 4:
            plan.append(Job({**body, "stream_format": "sse" if i % 20 == 4 else "ndjson"}, "events", 200))
        elif slot == 5:
            plan.append(Job({**body, "stream": False}, "whole", 200))
        elif slot == 6:
            plan.append(Job({**body, **BAD_BODIES[i % len(BAD_BODIES)]}, "bad", 400))
        elif slot == 7:
            plan.append(Job(body, "abandon-queued", 200, "after_send"))
        elif slot == 8:
            plan.append(Job({**body, "input": MEDIUM}, "abandon-mid", 200, "after_first_audio"))
        else:
            plan.append(Job(body, "audio", 200))
    return plan


def run_job(url: str, job: Job) -> dict[str, Any]:
    """Send one job; a valid request must end cleanly (the whole body), a bad one with its 4xx."""
    outcome: dict[str, Any] = {"kind": job.kind, "ok": False}
    client: Stream | None = None
    try:
        client = Stream(url, job.body)
        if job.abandon == "after_send":
            time.sleep(0.02)
            outcome["ok"] = True
            return outcome
        status = client.read_head()
        outcome["status"] = status
        body = b""
        for piece in client.body():
            body += piece
            if job.abandon == "after_first_audio":
                outcome["ok"] = status == 200
                return outcome
        if status != job.expect:
            outcome["error"] = f"HTTP {status}: {body[:200]!r}"
        elif status >= 400:
            outcome["ok"] = set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
        elif job.kind == "events":
            outcome["ok"] = b"speech.audio.done" in body
        else:
            outcome["ok"] = len(body) > 0
    except (OSError, ValueError, KeyError) as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            client.close()
    return outcome


def _tree_state(server: Service) -> dict[str, float]:
    rss, fds = 0, 0
    for process in server.tree():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            rss += process.memory_info().rss
            fds += process.num_fds()
    return {"rss_mib": rss / 2**20, "fds": fds}


def soak(server: Service, count: int) -> dict[str, Any]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        # Warm-up at the run's own concurrency, every kind several times: lazy set-up and the steady
        # size of the pools (the front's threads, each with its manager connection; allocator arenas
        # for concurrent requests) are not growth. A leak grows with the requests after it.
        list(pool.map(lambda job: run_job(server.url, job), jobs(WARM_UP)))
        server.wait_idle()
        time.sleep(SETTLE_S)
        before = _tree_state(server)
        started = time.monotonic()
        outcomes = list(pool.map(lambda job: run_job(server.url, job), jobs(count)))
    wall = time.monotonic() - started
    server.wait_idle()
    time.sleep(SETTLE_S)
    after = _tree_state(server)
    failed = [o for o in outcomes if not o["ok"]]
    growth = after["rss_mib"] - before["rss_mib"]
    return {
        "requests": count,
        "kinds": dict(Counter(o["kind"] for o in outcomes)),
        "wall_s": wall,
        "before": before,
        "after": after,
        "rss_growth_mib": growth,
        "failed": len(failed),
        "failures": failed[:20],
        "passed": growth < MAX_RSS_GROWTH_MIB and after["fds"] <= before["fds"] and not failed,
    }


def render(result: dict[str, Any]) -> str:
    soak_result, machine = result["soak"], result["machine"]
    before, after = soak_result["before"], soak_result["after"]
    return "\n".join(
        [
            f"### tts-api soak, {result['started_utc']}",
            "",
            f"- Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores; "
            f"{soak_result['requests']} requests, {CONCURRENCY} at a time, {soak_result['wall_s']:.0f} s",
            f"- Mix: {', '.join(f'{k} {v}' for k, v in sorted(soak_result['kinds'].items()))}",
            "",
            "| | before | after | change |",
            "|---|---|---|---|",
            f"| tree RSS | {before['rss_mib']:.0f} MiB | {after['rss_mib']:.0f} MiB | "
            f"{soak_result['rss_growth_mib']:+.1f} MiB (limit +{MAX_RSS_GROWTH_MIB:.0f}) |",
            f"| open file descriptors | {before['fds']:.0f} | {after['fds']:.0f} | "
            f"{after['fds'] - before['fds']:+.0f} |",
            f"| failed valid requests | | {soak_result['failed']} | |",
            "",
            f"Result: {'passed' if soak_result['passed'] else 'FAILED'}",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    model_dir = args.model_dir or Settings().model_dir
    now = datetime.now(timezone.utc)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    server = Service.tts_api_server(model_dir, out, "cpu", name="tts-api-soak")
    try:
        server.wait_ready()
        outcome = soak(server, args.requests)
        result: dict[str, Any] = {
            "started_utc": now.strftime("%Y-%m-%d %H:%M UTC"),
            "machine": describe_machine(1, 1),
            "soak": outcome,
        }
    finally:
        server.stop()
    (out / f"soak-{now:%Y%m%d-%H%M%S}.json").write_text(json.dumps(result, indent=2))
    text = render(result)
    (out / "soak-latest.md").write_text(text)
    print(text)
    print(f"results in {out}", file=sys.stderr)
    return 0 if outcome["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
