"""The machine a run came from, and how much of its CPU other programs took while the run measured."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from .processes import ROOT, CpuMeter

__all__ = ["LoadMeter", "bf16_hardware", "describe_machine", "server_torch_threads"]

PACKAGES = ("tts-api", "torch", "kokoro", "misaki", "litserve", "fastapi", "uvicorn", "numpy", "av")


def describe_machine(torch_threads: int, server_torch_threads: int | None) -> dict[str, Any]:
    """CPU model, cores, memory, torch threads, package versions and the git revision."""
    import torch

    cpu = _cpuinfo()
    return {
        "cpu_model": cpu.get("model name", platform.processor() or platform.machine()),
        "cpu_family_model": f"family {cpu.get('cpu family', '?')} model {cpu.get('model', '?')}",
        "cpu_flags": sorted(
            set(cpu.get("flags", "").split()) & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"}
        ),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch_threads": torch_threads,
        "server_torch_threads": server_torch_threads,
        "torch_config": {
            "mkl": torch.backends.mkl.is_available(),
            "openmp": torch.backends.openmp.is_available(),
        },
        "cuda": torch.cuda.is_available(),
        "versions": {name: _version(name) for name in PACKAGES},
        "git": _git(),
    }


def bf16_hardware() -> bool:
    """Whether this CPU multiplies in bfloat16 (AMX or AVX512-BF16): where `--engine bf16` may pay."""
    return bool(set(_cpuinfo().get("flags", "").split()) & {"amx_bf16", "avx512_bf16"})


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() not in info:
                info[key.strip()] = value.strip()
    return info


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD").strip() or None, "dirty": bool(status.strip())}


def server_torch_threads(log: str) -> int | None:
    """The torch thread count the server's worker reported in its log."""
    match = re.search(r"\(\w+ engine, (\d+) threads\)", log)
    return int(match.group(1)) if match else None


class LoadMeter:
    """CPU seconds used on the machine by everything except this benchmark, per phase.

    The benchmark's own CPU is this process plus the trees of the servers it started; whatever
    else the machine's CPUs did in a phase was other work competing with the measurement. A virtual
    machine's CPUs may also be withheld by its hypervisor (steal): counted apart, since no program here
    used it. A phase in which a server stops is not `measured`: the CPU its processes use after their
    last sample cannot be told from other programs'.
    """

    def __init__(self, trees: Callable[[], Sequence[psutil.Process]]) -> None:
        self.trees = trees
        self.phases: dict[str, dict[str, float]] = {}
        self._name: str | None = None
        self._measured = True
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self._ours = CpuMeter()

    def _sample(self) -> tuple[float, float, float, float]:
        """(time, CPU seconds the machine's programs used, stolen CPU seconds, this benchmark's)."""
        times = psutil.cpu_times()
        steal = getattr(times, "steal", 0.0)
        # Linux counts a guest's time in user and nice too: not twice.
        apart = ("idle", "iowait", "steal", "guest", "guest_nice")
        busy = sum(times) - sum(getattr(times, name, 0.0) for name in apart)
        return time.monotonic(), busy, steal, self._ours.read([psutil.Process(), *self.trees()])

    def phase(self, name: str, *, measured: bool = True) -> None:
        """End the current phase (if any) and start `name`."""
        self.end()
        self._name = name
        self._measured = measured
        self._start = self._sample()

    def end(self) -> None:
        if self._name is None:
            return
        now, busy, steal, ours = self._sample()
        wall, busy0, steal0, ours0 = (
            a - b for a, b in zip((now, busy, steal, ours), self._start, strict=True)
        )
        cores = os.cpu_count() or 1
        other = max(0.0, busy0 - ours0)
        self.phases[self._name] = {
            "wall_s": wall,
            "benchmark_cpu_s": ours0,
            "other_cpu_s": other,
            "other_cpu_share": other / (wall * cores) if wall > 0 else 0.0,
            "steal_cpu_s": steal0,
            "steal_share": steal0 / (wall * cores) if wall > 0 else 0.0,
            "measured": self._measured,
        }
        self._name = None

    def summary(self) -> dict[str, Any]:
        measured = [p for p in self.phases.values() if p["measured"]]
        wall = sum(p["wall_s"] for p in measured)
        other = sum(p["other_cpu_s"] for p in measured)
        steal = sum(p["steal_cpu_s"] for p in measured)
        share = wall * (os.cpu_count() or 1)
        return {
            "phases": self.phases,
            "other_cpu_share": other / share if share > 0 else 0.0,
            "steal_share": steal / share if share > 0 else 0.0,
        }
