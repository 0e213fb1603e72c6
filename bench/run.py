"""`python -m bench.run [--quick] [--model-dir DIR] [--out DIR]`: measure every figure, print the table,
write the JSON, the Markdown table and the plots.

One run starts the real server (`server.py`, default flags) and, later, the plain LitServe server as
separate processes on free loopback ports, and times the bare KPipeline in this process on the same
texts, so every figure comes with its baseline from the same minutes of the same machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tts_api.settings import Settings

from .cancellation import measure_cancellation
from .client import speak
from .engines import engine_of, measure_engine
from .figures import build_figures, build_targets
from .latency import measure_idle
from .listeners import measure_listeners
from .machine import LoadMeter, describe_machine, server_torch_threads
from .memory import measure_memory
from .plan import FULL, QUICK, Plan
from .processes import ROOT, Service
from .report import render_table, write_json
from .sweep import measure_concurrency
from .texts import MEMORY_PHRASES

__all__ = ["main"]

RESULTS = ROOT / "bench" / "results"
SCHEMA = "tts-api-bench/1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="model directory for the server, the plain LitServe server and the bare pipeline "
        "(default: the server's, TTS_MODEL_DIR or ~/.cache/tts-api/kokoro-82m-v1.0)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one repetition, shorter texts, 1-2 streams (~2 min)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default: bench/results/<UTC timestamp>/, and then also "
        "bench/results/latest.json and latest.md)",
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="for all three (default cpu)"
    )
    return parser.parse_args(argv)


def _progress(started: float, message: str) -> None:
    print(f"[bench {time.monotonic() - started:6.0f} s] {message}", file=sys.stderr, flush=True)


def _command(argv: list[str], plan: Plan) -> str:
    if os.environ.get("MAKELEVEL") and all(a == "--quick" for a in argv):
        return "make bench QUICK=1" if plan is QUICK else "make bench"
    return " ".join(["python -m bench.run", *argv])


def _warm_up(service: Service, formats: tuple[str, ...] = ("pcm", "mp3")) -> None:
    """Discarded requests: the first of each format pays for lazy set-up on both sides of the wire."""
    for response_format in formats:
        service.wait_idle()
        speak(service.url, MEMORY_PHRASES[0], response_format)
    service.wait_idle()


def _stop_in_background(service: Service, stopping: list[threading.Thread]) -> None:
    """SIGTERM and reap the server's tree while the results are written (a clean shutdown takes
    seconds); only once nothing is measured any more."""
    stopping.append(threading.Thread(target=service.stop, name=f"stop {service.name}"))
    stopping[-1].start()


def measure(
    plan: Plan, model_dir: Path, device: str, out: Path, started: float, stopping: list[threading.Thread]
) -> dict[str, Any]:
    """Start the servers, run every phase, and stop the servers (in the background, joined via
    `stopping`); return the raw samples."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = Settings().torch_threads or os.cpu_count() or 1  # what the server's single worker uses
    services: list[Service] = []
    load = LoadMeter(lambda: [p for s in services for p in s.tree()])
    raw: dict[str, Any] = {"torch_threads": threads}
    long_text, follow_text = plan.texts["long"], plan.texts["short"]
    idle_floor = plan is not QUICK  # the idle tree's CPU over the same window: 5 s the quick run skips
    try:
        load.phase("start-up")
        _progress(
            started,
            f"starting tts-api and the plain LitServe server on {model_dir}; loading the bare pipeline",
        )
        server = Service.tts_api_server(model_dir, logs, device)
        # The plain server idles (well under 1% of a core) until figure 6 needs it.
        plain = Service.plain_litserve(model_dir, logs, device, threads)
        services += [server, plain]
        from .baseline import BarePipeline  # imports torch and kokoro: seconds the servers use to start

        bare = BarePipeline(model_dir, device, threads)  # loads while the servers start
        server.wait_ready()
        plain.wait_ready()
        _warm_up(server)
        _warm_up(plain, ("pcm",))  # it speaks pcm only
        bare.synthesize(MEMORY_PHRASES[0])
        raw["server_torch_threads"] = server_torch_threads(server.log())
        default_engine = engine_of(server)

        load.phase("idle requests")
        _progress(started, "figures 1, 2, 4: idle requests and bare pipeline, interleaved")
        raw["idle"] = measure_idle(server, bare, plan)

        load.phase("cancellation tts-api")
        _progress(started, "figure 6: abandoning long streams on tts-api")
        raw["cancellation"] = {
            "tts_api": measure_cancellation(
                server,
                long_text,
                follow_text,
                trials=plan.cancel_trials["tts_api"],
                idle_reps=0,  # the short pcm requests of figure 1 are its idle samples
                window_s=plan.cancel_window_s,
                measure_floor=idle_floor,
                last_use=False,
            )
        }

        load.phase("concurrency")
        _progress(started, f"figure 3: {', '.join(map(str, plan.concurrency))} simultaneous streams")
        raw["concurrency"] = measure_concurrency(server, plan.texts["medium"], plan.concurrency)

        load.phase("memory")
        _progress(started, f"figure 5: {plan.memory_requests} mixed requests")
        raw["memory"] = measure_memory(server, plan.memory_requests, plan.memory_concurrency)
        raw["engines"] = {"default": default_engine}
        if default_engine == "torch":  # no ONNX export (the tiny model): this server is the torch one
            load.phase("engine torch")
            _progress(started, "figure 10: the torch engine (the default here) beside the bare pipeline")
            raw["engines"]["torch"] = measure_engine(server, bare, plan)
        # Not in the background: a shutting-down tree takes CPU the plain server's timings would feel.
        load.phase("stopping tts-api", measured=False)
        server.stop()

        load.phase("cancellation plain")
        _progress(started, "figure 6: abandoning long streams on the plain LitServe server")
        raw["cancellation"]["plain_litserve"] = measure_cancellation(
            plain,
            long_text,
            follow_text,
            trials=plan.cancel_trials["plain_litserve"],
            idle_reps=plan.plain_idle_reps,
            # The bare pipeline again, side by side with the plain server's idle samples: minutes
            # have passed since figure 1, and this machine's speed drifts over minutes.
            baseline=lambda: bare.synthesize(follow_text).record(),
            window_s=plan.cancel_window_s,
            measure_floor=idle_floor,
            last_use=True,
        )
        _stop_in_background(plain, stopping)

        if "torch" not in raw["engines"]:
            load.phase("engine torch", measured=False)
            _progress(started, "figure 10: the torch engine beside the bare pipeline")
            torch_server = Service.tts_api_server(
                model_dir, logs, device, "--engine", "torch", name="tts-api-torch"
            )
            services.append(torch_server)
            torch_server.wait_ready()
            _warm_up(torch_server, ("pcm",))
            load.phase("engine torch")
            raw["engines"]["torch"] = measure_engine(torch_server, bare, plan)
            load.phase("stopping engine torch", measured=False)
            torch_server.stop()

        raw["listeners"] = {}
        capacity = None
        for policy in ("fifo", "edf"):  # fifo first: its burst measures the worker's full-speed capacity
            load.phase(f"listeners {policy}", measured=False)
            _progress(started, f"figures 7-9: listeners on a server with --scheduler {policy}")
            server = Service.tts_api_server(
                model_dir, logs, device, "--scheduler", policy, name=f"tts-api-{policy}"
            )
            services.append(server)
            server.wait_ready()
            _warm_up(server, ("pcm",))
            load.phase(f"listeners {policy}")
            raw["listeners"][policy] = measure_listeners(
                server,
                list(plan.listener_texts),
                plan.listener_loads,
                plan.listener_duration_s,
                capacity=capacity,
            )
            capacity = capacity or raw["listeners"][policy]["capacity_audio_s_per_s"]
            load.phase(f"stopping {policy}", measured=False)
            server.stop()
        load.end()
    except BaseException:
        for thread in stopping:
            thread.join()
        for service in services:
            service.stop()
        raise
    raw["load"] = load.summary()
    return raw


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    model_dir = args.model_dir or Settings().model_dir
    now = datetime.now(timezone.utc)
    out = args.out or RESULTS / now.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    stopping: list[threading.Thread] = []
    raw = measure(plan, model_dir, args.device, out, started, stopping)
    figures = build_figures(raw, plan)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "started_utc": now.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": time.monotonic() - started,
        "command": _command(argv, plan),
        "model_dir": str(model_dir),
        "device": args.device,
        "plan": plan.describe(),
        "machine": describe_machine(raw["torch_threads"], raw["server_torch_threads"]),
        "load": raw["load"],
        "figures": figures,
        "targets": build_targets(figures),
        "raw": raw,
    }
    from .plots import plot_all  # matplotlib, only now

    result["files"] = plot_all(result, raw, out)
    for thread in stopping:
        thread.join()
    result["duration_s"] = time.monotonic() - started
    table = render_table(result)
    write_json(out / "results.json", result)
    (out / "results.md").write_text(table)
    if args.out is None:
        shutil.copyfile(out / "results.json", RESULTS / "latest.json")
        shutil.copyfile(out / "results.md", RESULTS / "latest.md")
    print(table)
    _progress(started, f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
