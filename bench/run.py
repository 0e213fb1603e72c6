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
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tts_api.settings import Settings

from .agents import measure_agents
from .batching import measure_batched_quality, measure_batching
from .cancellation import measure_cancellation
from .client import speak
from .engines import engine_of, measure_engine, worker_capacity
from .figures import build_figures, build_targets
from .goodput import measure_goodput, scenarios, servers
from .latency import measure_idle
from .machine import LoadMeter, bf16_hardware, describe_machine, server_torch_threads
from .memory import measure_memory, measure_small_requests
from .plan import FULL, QUICK, Plan
from .processes import ROOT, Service
from .quality import score_bare, score_server
from .report import render_table, write_json
from .scale import measure_batched_scale, measure_scale
from .sweep import measure_concurrency
from .texts import MEMORY_PHRASES

__all__ = ["main"]

RESULTS = ROOT / "bench" / "results"
SCHEMA = "tts-api-bench/1"
BATCHED_ENGINE = "emulated:8:0.05:64"  # figure 8's batching worker: a GPU's shape
BURST_CHARS = 300  # each of its burst says this much of the long text, and one character more than the last
BATCHING_REPEATS = 2  # figure 13: each path's median of this many passes, taking turns


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
        "--quick",
        action="store_true",
        help="one repetition, shorter texts, 1-2 streams (a few minutes: 6.7 on the tiny model, 2 vCPUs)",
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


class Launcher:
    """The tts-api servers a run starts after the first, in the order it asks for them (name, flags).

    With `ahead` (the quick plan), each one is started as the one before it is taken, so that it loads
    while that one is measured; otherwise each starts when it is asked for. Every server it starts is
    appended to `services`, whatever happens next."""

    def __init__(
        self,
        start: Callable[[str, tuple[str, ...]], Service],
        order: list[tuple[str, tuple[str, ...]]],
        services: list[Service],
        *,
        ahead: bool,
    ) -> None:
        self._start, self._order, self._services, self._ahead = start, dict(order), services, ahead
        self._started: dict[str, Service] = {}

    def prepare(self) -> None:
        """Start the first server now (ahead only)."""
        if self._ahead and self._order:
            self._launch(next(iter(self._order)))

    def take(self, name: str, flags: tuple[str, ...]) -> Service:
        """The server `name`, started (not yet ready); with `ahead`, the next one starts too."""
        assert self._order.get(name) == flags, f"{name} {flags} is not the next server planned"
        service = self._started.pop(name, None) or self._launch(name)
        del self._order[name]
        self.prepare()
        return service

    def _launch(self, name: str) -> Service:
        if name not in self._started:
            self._started[name] = self._start(name, self._order[name])
            self._services.append(self._started[name])
        return self._started[name]


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
        default_capacity = worker_capacity(server)
        # The engines auto did not pick, each beside the bare pipeline (where nothing is exported, torch is
        # the default: measured as such above).
        engines = ["torch", "bf16"] if plan.bf16_variant and bf16_hardware() else ["torch"]
        if default_engine == "bf16":  # auto timed it faster than ONNX Runtime on this machine
            engines.append("onnx")
        variants: list[tuple[str, tuple[str, ...]]] = [
            (e, ("--engine", e)) for e in engines if e != default_engine
        ]
        variants.append(("untrimmed", ("--no-trim-silence",)))
        goodput = scenarios(
            plan.emulated, plan.listener_duration_s, plan.emulated_duration_s, plan.real_burst
        )
        # Figure 8 measures the path carrying every stream: no queue-wait bound refuses the last ones.
        scale_flags = ("--engine", "emulated:200", "--max-pending", "1024", "--max-queue-wait", "0")
        batched_flags = ("--engine", BATCHED_ENGINE, "--max-pending", "1024", "--max-queue-wait", "0")
        launcher = Launcher(
            lambda name, flags: Service.tts_api_server(model_dir, logs, device, *flags, name=name),
            [
                *((f"tts-api-{v}", flags) for v, flags in variants),
                ("tts-api-two-workers", ("--workers-per-device", "2")),
                *(spec for scenario in goodput for spec in servers(scenario)),
                ("scale", scale_flags),
                ("batched-scale", batched_flags),
            ],
            services,
            ahead=plan.start_ahead,
        )
        launcher.prepare()

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
        _progress(started, "figure 5: small requests that ask for much")
        raw["memory"]["small"] = measure_small_requests(server)

        load.phase("quality")
        _progress(started, f"figure 11: {len(plan.quality_sentences)} sentences, bare and {default_engine}")
        raw["quality"] = {
            "bare": score_bare(bare, plan.quality_sentences),
            "variants": {default_engine or "default": score_server(server, plan.quality_sentences)},
        }
        load.phase("agents")
        _progress(started, "figure 12: voice agents, text streamed in over the multi-stream-input socket")
        raw["agents"] = measure_agents(server, plan)
        raw["engines"] = {"default": default_engine, "capacity": {"default": default_capacity}}
        if default_engine == "torch":  # no ONNX export (the tiny model): this server is the torch one
            load.phase("engine torch")
            _progress(started, "figure 10: the torch engine (the default here) beside the bare pipeline")
            raw["engines"]["torch"] = {**measure_engine(server, bare, plan), "capacity": default_capacity}
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

        for variant, flags in variants:
            load.phase(f"engine {variant}", measured=False)
            _progress(started, f"figures 10-11: {' '.join(flags)} beside the bare pipeline")
            other = launcher.take(f"tts-api-{variant}", flags).wait_ready()
            _warm_up(other, ("pcm",))
            load.phase(f"engine {variant}")
            raw["engines"][variant] = {
                **measure_engine(other, bare, plan),
                "capacity": worker_capacity(other),
            }
            # An engine variant is named by itself; the untrimmed one by its engine too.
            name = f"{raw['engines'][variant]['engine']}, {variant}" if variant == "untrimmed" else variant
            raw["quality"]["variants"][name] = score_server(other, plan.quality_sentences)
            load.phase(f"stopping engine {variant}", measured=False)
            other.stop()

        load.phase("engine two workers", measured=False)
        streams = plan.two_worker_streams
        _progress(started, f"figure 10: {streams} streams on two workers of one thread each")
        two = launcher.take("tts-api-two-workers", ("--workers-per-device", "2")).wait_ready()
        _warm_up(two, ("pcm",))
        load.phase("engine two workers")
        raw["engines"]["two_workers"] = {
            **measure_concurrency(two, plan.texts["medium"], (streams,)),
            "capacity": worker_capacity(two),
        }
        load.phase("stopping engine two workers", measured=False)
        two.stop()

        raw["goodput"] = {}
        for scenario in goodput:
            _progress(started, f"figures 7, 9: listeners on the {scenario.name}, fifo then edf")

            def start(name: str, flags: tuple[str, ...]) -> Service:
                load.phase(f"starting {name}", measured=False)
                server = launcher.take(name, flags).wait_ready()
                _warm_up(server, ("pcm",))
                load.phase(f"listeners {name}")
                return server

            raw["goodput"][scenario.name] = measure_goodput(
                scenario, tuple(plan.listener_texts), plan.listener_loads, start
            )

        load.phase("starting emulated:200", measured=False)
        if plan.batch_sizes:
            _progress(
                started,
                f"figure 13: {', '.join(map(str, plan.batch_sizes))} chunks, one by one and batched; "
                "figure 11's sentences both ways, scored",
            )
            raw["batching"] = measure_batching(model_dir, plan.batch_sizes, repeats=BATCHING_REPEATS)
            raw["batching_quality"] = measure_batched_quality(model_dir, plan.quality_sentences)
        _progress(started, f"figure 8: {', '.join(map(str, plan.scale_streams))} streams on emulated:200")
        scale = launcher.take("scale", scale_flags).wait_ready()
        _warm_up(scale, ("pcm",))
        load.phase("scale")
        raw["scale"] = measure_scale(scale, plan.texts["medium"], plan.scale_streams)
        load.phase("stopping scale", measured=False)
        scale.stop()
        _progress(
            started,
            f"figure 8: a burst of {plan.batched_burst}, then {plan.batched_streams} long streams, "
            f"on {BATCHED_ENGINE}",
        )
        batched = launcher.take("batched-scale", batched_flags).wait_ready()
        _warm_up(batched, ("pcm",))
        load.phase("batched scale")
        long_text = plan.texts["long"]
        burst_texts = [long_text[: BURST_CHARS + i] for i in range(plan.batched_burst)]
        raw["batched_scale"] = measure_batched_scale(batched, burst_texts, long_text, plan.batched_streams)
        load.phase("stopping batched scale", measured=False)
        batched.stop()
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
