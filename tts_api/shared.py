"""State every process of one server shares, served by one manager process we start and stop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from typing import Any

from .cancellation import CancelBoard
from .metrics import Counters

__all__ = ["Shared", "shared_state"]


class _Manager(BaseManager):
    pass


_Manager.register("CancelBoard", CancelBoard)
_Manager.register("Counters", Counters)


@dataclass(frozen=True)
class Shared:
    """Proxies to the shared objects; they pickle into spawned workers and survive forks."""

    board: Any  # proxy of CancelBoard
    counters: Any  # proxy of Counters


@contextmanager
def shared_state() -> Iterator[Shared]:
    """Start the manager process for the lifetime of the server."""
    manager = _Manager()
    manager.start()
    try:
        yield Shared(board=manager.CancelBoard(), counters=manager.Counters())  # type: ignore[attr-defined]
    finally:
        manager.shutdown()
