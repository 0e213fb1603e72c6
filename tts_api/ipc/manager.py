"""The manager process that holds what every process of one server shares, and typed handles to it.

Calls through a proxy are round trips to the manager process. The Protocols below are what mypy checks
those calls against; the real classes (`StreamBoard`, `Counters`) satisfy them, so unit tests can pass
the objects themselves. The manager ignores SIGTERM and SIGINT (ipc/stopping.py): it must outlive main's
drain, and is stopped when `shared_state()` ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.managers import BaseManager
from multiprocessing.process import BaseProcess
from typing import Protocol, cast

from .calibrations import Calibrations, Point
from .counters import Counters, Snapshot
from .stopping import StopFlag, ignore_stop_signals
from .streams import Admission, CancelReason, StreamBoard, StreamState
from .workers import WorkerProcess

__all__ = [
    "BoardProxy",
    "CalibrationsProxy",
    "CountersProxy",
    "Shared",
    "SharedState",
    "manager_process",
    "shared_state",
]


class BoardProxy(Protocol):
    """The stream board (ipc/streams.py) as seen from any process."""

    def open(self, key: str, limit: int, max_wait_s: float = 0.0) -> Admission: ...
    def wait_estimate(self) -> float | None: ...
    def claim(self, key: str, worker: WorkerProcess) -> None: ...
    def cancel(self, key: str, reason: CancelReason = "client") -> bool: ...
    def delivered(self, key: str, audio_s: float) -> None: ...
    def feed(self, key: str, text: str, *, flush: bool = False, end: bool = False) -> bool: ...
    def poll(self, keys: list[str], take: list[str] | None = None) -> dict[str, StreamState]: ...
    def close(self, key: str) -> None: ...
    def reap(self) -> int: ...
    def size(self) -> int: ...
    def drain(self) -> None: ...
    def draining(self) -> bool: ...
    def cancel_all(self, reason: CancelReason) -> int: ...
    def calls(self) -> dict[str, int]: ...


class CountersProxy(Protocol):
    """The server's counters (ipc/counters.py) as seen from any process."""

    def add(self, name: str, amount: float = 1.0, **labels: object) -> None: ...
    def set(self, name: str, value: float, **labels: object) -> None: ...
    def observe(self, name: str, values: Iterable[float], **labels: object) -> None: ...
    def snapshot(self) -> Snapshot: ...


class CalibrationsProxy(Protocol):
    """Start-up measurements by worker kind (ipc/calibrations.py) as seen from any process."""

    def get(self, kind: str) -> list[Point] | None: ...
    def put(self, kind: str, points: list[Point]) -> None: ...


class _Manager(BaseManager):
    pass


_Manager.register("StreamBoard", StreamBoard)
_Manager.register("Counters", Counters)
_Manager.register("Calibrations", Calibrations)


@dataclass(frozen=True)
class Shared:
    """Handles to the shared objects; they pickle into spawned workers and survive forks."""

    board: BoardProxy
    counters: CountersProxy
    stopping: StopFlag = field(default_factory=StopFlag)  # set when main stops its children
    calibrations: CalibrationsProxy = field(default_factory=Calibrations)


@dataclass(frozen=True)
class SharedState:
    """The running manager (main watches it) and the handles to what it holds."""

    shared: Shared
    process: BaseProcess


def manager_process(manager: BaseManager) -> BaseProcess:
    """The process a started manager runs in (BaseManager keeps it, without a public name for it)."""
    return cast(BaseProcess, manager._process)  # type: ignore[attr-defined]


@contextmanager
def shared_state() -> Iterator[SharedState]:
    """Start the manager process for the lifetime of the server."""
    manager = _Manager()
    manager.start(initializer=ignore_stop_signals)
    try:
        board = cast(BoardProxy, manager.StreamBoard())  # type: ignore[attr-defined]
        counters = cast(CountersProxy, manager.Counters())  # type: ignore[attr-defined]
        calibrations = cast(CalibrationsProxy, manager.Calibrations())  # type: ignore[attr-defined]
        shared = Shared(board=board, counters=counters, calibrations=calibrations)
        yield SharedState(shared, manager_process(manager))
    finally:
        manager.shutdown()
