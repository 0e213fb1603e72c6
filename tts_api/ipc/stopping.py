"""Only the main process acts on SIGTERM and SIGINT; every other process of the server waits to be stopped.

A signal sent to the whole process group (systemd's default KillMode=control-group, `kill -- -PGID`, a
supervisor that signals the group, Ctrl-C in a terminal) reaches every process at once. Main answers it
with a drain (shutdown.py), which needs the manager processes, the HTTP servers and the workers to keep
going. So they ignore it, and main stops them itself once the drain is over: it sets the StopFlag first,
from which moment the children heed the SIGTERM they are stopped with.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopFlag", "heed_only_when_stopping", "ignore_stop_signals", "stop_signals_held"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """Set by main just before it stops its children. Shared memory: forked processes see it, and it
    pickles into spawned ones (only while they are being spawned, like every multiprocessing object)."""

    def __init__(self) -> None:
        self._value: Any = multiprocessing.RawValue(ctypes.c_bool, False)  # lock-free: read in handlers

    def set(self) -> None:
        self._value.value = True

    def is_set(self) -> bool:
        return bool(self._value.value)


def ignore_stop_signals() -> None:
    """For a process main stops by other means (a manager: its `shutdown()`)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Block SIGTERM and SIGINT in this thread while the block runs. A process forked meanwhile keeps them
    blocked for good (LitServe's manager, which takes no initializer); this one gets any that came once
    the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def heed_only_when_stopping(flag: StopFlag, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
    """In a child: until `flag` is set, `signals` do nothing; then what they did before (the handler in
    place, or by default ending the process). Call it from the process's main thread."""
    for sig in signals:
        signal.signal(sig, _guarded(flag, signal.getsignal(sig)))


def _guarded(flag: StopFlag, previous: Any) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if not flag.is_set():
            return  # meant for main, which drains and then stops this process itself
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default action: end as the signal would have
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler
