"""A process as a request's start frame names it: its pid and when it started, and whether it still runs.

"When it started" must not move while the process runs, or a live worker reads as dead. psutil's
`create_time()` on Linux is `boot_time() + start ticks`, and `boot_time()` is the wall clock minus the
uptime: an NTP step or a VM resume moves it. So on Linux the mark is the start time in clock ticks since
boot (`/proc/<pid>/stat`, field 22), which no clock step changes; elsewhere psutil's `create_time()`,
which the BSDs and macOS store once, at the process's start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

__all__ = ["WorkerProcess", "start_mark"]

_PROC = "/proc"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start ticks) from /proc/<pid>/stat; None when the process is gone."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as stat:
            line = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last one.
    fields = line[line.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def _has_proc() -> bool:
    return os.path.exists(f"{_PROC}/self/stat")


def start_mark(pid: int) -> float | None:
    """When process `pid` started, in a unit no wall-clock step moves; None if it is gone or a zombie."""
    if _has_proc():
        stat = _proc_stat(pid)
        return None if stat is None or stat[0] in ("Z", "X") else float(stat[1])
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class WorkerProcess:
    """The worker process that took a request."""

    pid: int
    started: float  # its start_mark: a later process that reuses the pid is not the same worker

    @classmethod
    def current(cls) -> WorkerProcess:
        """This process."""
        pid = os.getpid()
        started = start_mark(pid)
        if started is None:  # cannot happen: a running process reads its own stat
            raise RuntimeError("cannot read this process's start time")
        return cls(pid, started)

    def alive(self) -> bool:
        return start_mark(self.pid) == self.started
