"""The manager process that holds what every process of one server shares, and typed handles to it.

Calls through a proxy are round trips to the manager process. The Protocols below are what mypy checks
those calls against; the real classes (`StreamBoard`, `Counters`) satisfy them, so unit tests can pass
the objects themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from typing import Protocol, cast

from .counters import Counters, Snapshot
from .streams import Admission, CancelReason, StreamBoard, StreamState

__all__ = ["BoardProxy", "CountersProxy", "Shared", "shared_state"]


class BoardProxy(Protocol):
    """The stream board (ipc/streams.py) as seen from any process."""

    def open(self, key: str, limit: int) -> Admission: ...
    def cancel(self, key: str, reason: CancelReason = "client") -> bool: ...
    def delivered(self, key: str, audio_s: float) -> None: ...
    def poll(self, keys: list[str]) -> dict[str, StreamState]: ...
    def close(self, key: str) -> None: ...
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


class _Manager(BaseManager):
    pass


_Manager.register("StreamBoard", StreamBoard)
_Manager.register("Counters", Counters)


@dataclass(frozen=True)
class Shared:
    """Handles to the shared objects; proxies pickle into spawned workers and survive forks."""

    board: BoardProxy
    counters: CountersProxy


@contextmanager
def shared_state() -> Iterator[Shared]:
    """Start the manager process for the lifetime of the server."""
    manager = _Manager()
    manager.start()
    try:
        board = cast(BoardProxy, manager.StreamBoard())  # type: ignore[attr-defined]
        counters = cast(CountersProxy, manager.Counters())  # type: ignore[attr-defined]
        yield Shared(board=board, counters=counters)
    finally:
        manager.shutdown()
