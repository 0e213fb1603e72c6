"""The benchmark's servers (tts-api and a plain LitServe API) as processes, and what it measures of them."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from tts_api.processes import ROOT, ServerProcess, free_port, server_command

from .client import Metrics

__all__ = ["ROOT", "CpuMeter", "Service", "free_port", "own_cpu", "tree_memory", "tree_rss_mib"]

START_TIMEOUT_S = 600.0  # loading Kokoro takes 10-30 s on a quiet 2-core box, much longer when it is busy
IDLE_TIMEOUT_S = 600.0  # an abandoned long stream on the plain server runs to its end (~1-2 min)
QUIET_CPU_FRACTION = 0.2  # of one core: what an idle server tree stays under (its loops poll queues)
QUIET_SAMPLE_S = 0.5


class Service(ServerProcess):
    """A server under measurement; tts-api also tells, through /metrics, when it has nothing in flight."""

    def __init__(
        self, name: str, command: Sequence[str], log_path: Path, port: int, *, has_metrics: bool = False
    ) -> None:
        super().__init__(command, port, log_path, name=name)
        self.metrics = Metrics(self.url) if has_metrics else None

    @classmethod
    def tts_api_server(
        cls, model_dir: Path, log_dir: Path, device: str, *args: str, name: str = "tts-api"
    ) -> Service:
        """`python server.py` with its defaults (and `args`), as a user runs it."""
        port = free_port()
        command = server_command(port, "--model-dir", str(model_dir), "--device", device, *args)
        return cls(name, command, log_dir / f"{name}.log", port, has_metrics=True)

    @classmethod
    def plain_litserve(cls, model_dir: Path, log_dir: Path, device: str, torch_threads: int) -> Service:
        """bench/plain_server.py: a plain LitServe streaming API over the same engine."""
        port = free_port()
        command = [sys.executable, "-m", "bench.plain_server", "--port", str(port), "--device", device]
        command += ["--model-dir", str(model_dir), "--torch-threads", str(torch_threads)]
        return cls("plain-litserve", command, log_dir / "plain-litserve.log", port)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> Service:
        super().wait_ready(timeout)
        return self

    def wait_idle(self, timeout: float = IDLE_TIMEOUT_S) -> float:
        """Block until the server has nothing in flight; return the seconds waited.

        tts-api says so itself: no cancel-board entries (a worker clears its entry only when the
        job has stopped) and no open encoders. For another server, a tree using less than
        QUIET_CPU_FRACTION of a core means its worker has stopped synthesizing.
        """
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.metrics is not None:
                values = self.metrics.scrape()
                if values["tts_cancel_board_entries"] == 0 and values["tts_open_encoders"] == 0:
                    return time.monotonic() - started
                time.sleep(0.05)
                continue
            meter = CpuMeter(self.tree())
            time.sleep(QUIET_SAMPLE_S)
            if meter.read(self.tree()) < QUIET_CPU_FRACTION * QUIET_SAMPLE_S:
                return time.monotonic() - started - QUIET_SAMPLE_S
        raise TimeoutError(f"{self.name} still busy after {timeout:.0f} s")


class CpuMeter:
    """CPU seconds (user + system) used by a changing set of processes since the meter was made.

    Each process counts its own time only, remembered after it exits: a parent's `children_*`
    times would count an exited child a second time.
    """

    def __init__(self, processes: Sequence[psutil.Process] = ()) -> None:
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        for proc in processes:
            seconds = own_cpu(proc)
            if seconds is not None:
                self._start[proc.pid] = self._last[proc.pid] = seconds

    def read(self, processes: Sequence[psutil.Process]) -> float:
        """CPU seconds since the meter was made, by `processes` and every process seen before."""
        for proc in processes:
            seconds = own_cpu(proc)
            if seconds is not None:
                self._last[proc.pid] = seconds
        return sum(last - self._start.get(pid, 0.0) for pid, last in self._last.items())


def own_cpu(proc: psutil.Process) -> float | None:
    """CPU seconds (user + system) `proc` itself has used; None if it is gone."""
    try:
        times = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return float(times.user + times.system)


def tree_rss_mib(processes: Sequence[psutil.Process]) -> float:
    """Resident memory of the processes, summed, in MiB (cheap enough to sample often)."""
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total / 2**20


def tree_memory(processes: Sequence[psutil.Process]) -> dict[str, Any]:
    """Resident (RSS) and unique (USS) memory of the processes, in MiB, summed and per process.

    RSS counts pages shared between forked processes once per process; USS counts only the pages
    a process alone holds, so the USS sum is what the tree as a whole would free.
    """
    rows = []
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = proc.memory_full_info()
            rows.append(
                {
                    "pid": proc.pid,
                    "name": _role(proc),
                    "rss_mib": info.rss / 2**20,
                    "uss_mib": info.uss / 2**20,
                }
            )
    return {
        "rss_mib": sum(r["rss_mib"] for r in rows),
        "uss_mib": sum(r["uss_mib"] for r in rows),
        "processes": rows,
    }


def _role(proc: psutil.Process) -> str:
    """A short name for a process of the tree: main, worker (spawned), or the forked helpers."""
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"
    if "spawn_main" in cmdline:
        return "inference worker"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "server.py" in cmdline or "plain_server" in cmdline:
        return "main or forked (http server / manager)"
    return cmdline[:80]
