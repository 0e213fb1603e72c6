"""Which process pays for each response format: the worker hands over PCM, the HTTP processes encode.

The server runs on a fast emulated engine (`emulated:400:0.005:16`: it sleeps instead of synthesizing, so
the model bounds nothing) and `streams` clients fetch a long text at once in each format, reading as fast
as they can. For each format: the audio the server made (its tts_audio_seconds_total), the wall time, the
audio per second that gives, and the CPU each kind of process spent per audio second: the inference
worker, the HTTP processes (each request's encoder lives there, front/encoding.py) and the rest (main, the
managers). The worker's share should not depend on the format; on a GPU its thread is what launches work.

`python -m bench.formats [--model-dir DIR] [--streams 16] [--formats pcm opus mp3] [--out FILE]`; JSON on
stdout.
"""

from __future__ import annotations

import argparse
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from tts_api.processes import ServerProcess
from tts_api.settings import Settings

from .client import Metrics, speak
from .processes import Service, own_cpu
from .report import print_json

__all__ = ["ENGINE", "main", "measure_formats"]

ENGINE = "emulated:400:0.005:16"
FLAGS = ("--engine", ENGINE, "--max-pending", "256", "--max-lead", "600", "--max-input-chars", "100000")
_ENCODERS = re.compile(r'tts_open_encoders\{process="(\d+)"\}')
TEXT = " ".join(f"This is sentence number {i} of a long text for many listeners at once." for i in range(60))


def roles(server: ServerProcess, metrics: Metrics) -> dict[int, str]:
    """Each process of the server's tree: `worker` (spawned), `http` (it has encoded a request's audio:
    its pid labels tts_open_encoders) or `other` (main, the managers)."""
    series = (_ENCODERS.fullmatch(name) for name in metrics.scrape())
    http = {int(match[1]) for match in series if match}
    found = {}
    for proc in server.tree():
        try:
            spawned = "spawn_main" in " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found[proc.pid] = "worker" if spawned else "http" if proc.pid in http else "other"
    return found


def _cpu(server: ServerProcess) -> dict[int, float]:
    return {proc.pid: seconds for proc in server.tree() if (seconds := own_cpu(proc)) is not None}


def measure_format(server: ServerProcess, fmt: str, streams: int, text: str = TEXT) -> dict[str, Any]:
    """`streams` clients fetch `text` in `fmt` at once; the audio made and each role's CPU per audio s."""
    metrics = Metrics(server.url)
    audio_before = metrics.scrape()["tts_audio_seconds_total"]
    cpu_before = _cpu(server)
    started = time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        exchanges = list(pool.map(lambda _: speak(server.url, text, fmt), range(streams)))
    wall_s = time.monotonic() - started
    failed = [e.error for e in exchanges if e.error]
    if failed:
        raise RuntimeError(f"{len(failed)} of {streams} {fmt} requests failed: {failed[0]}")
    audio_s = metrics.scrape()["tts_audio_seconds_total"] - audio_before
    cpu_after = _cpu(server)
    pids = roles(server, metrics)
    cpu_s = dict.fromkeys(("worker", "http", "other"), 0.0)
    for pid, seconds in cpu_after.items():
        cpu_s[pids.get(pid, "other")] += seconds - cpu_before.get(pid, 0.0)
    return {
        "streams": streams,
        "audio_s": audio_s,
        "wall_s": wall_s,
        "audio_s_per_s": audio_s / wall_s,
        "cpu_ms_per_audio_s": {role: 1000 * seconds / audio_s for role, seconds in cpu_s.items()},
        "processes": {role: sum(1 for r in pids.values() if r == role) for role in cpu_s},
    }


def measure_formats(
    server: ServerProcess, formats: tuple[str, ...] = ("pcm", "opus", "mp3"), streams: int = 16
) -> dict[str, Any]:
    """Every format of `formats` in turn on a server started with FLAGS."""
    return {"engine": ENGINE, "formats": {fmt: measure_format(server, fmt, streams) for fmt in formats}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.formats", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir, help="for its voices")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--formats", nargs="+", default=["pcm", "opus", "mp3"])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    log_dir = Path(args.out.parent if args.out else ".")
    server = Service.tts_api_server(args.model_dir, log_dir, "cpu", *FLAGS, name="tts-api-formats")
    try:
        result = measure_formats(server.wait_ready(), tuple(args.formats), args.streams)
    finally:
        server.stop()
    print_json(result, args.out)


if __name__ == "__main__":
    main()
