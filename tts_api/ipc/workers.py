"""A worker process as a request's start frame names it: its pid and start time, and whether it still runs."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

__all__ = ["WorkerProcess"]


@dataclass(frozen=True)
class WorkerProcess:
    """The worker process that took a request."""

    pid: int
    created: float  # its start time: a later process that reuses the pid is not the same worker

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return process.create_time() == self.created and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False
