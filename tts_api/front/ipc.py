"""The shared objects as the event loop may use them: every round trip in a thread, with a deadline.

A call through a manager proxy blocks until the manager process answers. On the event loop that would
stall every request of the HTTP process if the manager were slow or stuck, so calls run in a small thread
pool: `call` awaits the answer for at most `timeout_s` (then raises IpcTimeout), `post` does not wait
(for counters and cancels, which nothing waits on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["IPC_TIMEOUT_S", "IpcTimeout", "LoopIpc"]

logger = logging.getLogger(__name__)

IPC_TIMEOUT_S = 2.0  # a healthy manager answers in well under a millisecond
_THREADS = 4  # bounded: a stuck manager ties up at most this many threads

P = ParamSpec("P")
T = TypeVar("T")


class IpcTimeout(TimeoutError):
    """Raised when the manager process did not answer within the deadline."""


class LoopIpc:
    """Runs proxy calls off the event loop. Create one per HTTP process; its threads start on first use."""

    def __init__(self, timeout_s: float = IPC_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        # Created lazily: the HTTP processes are forked, and threads do not survive a fork.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="tts-ipc")
        return self._executor

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` in the pool and return its result; IpcTimeout if it takes longer than the deadline."""
        future = asyncio.get_running_loop().run_in_executor(self._pool(), lambda: fn(*args, **kwargs))
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except asyncio.TimeoutError:
            raise IpcTimeout(f"the shared state did not answer within {self.timeout_s:g} s") from None

    def post(self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        """Run `fn` in the pool without waiting; a failure is logged, never raised."""
        self._pool().submit(fn, *args, **kwargs).add_done_callback(_log_failure)


def _log_failure(future: Future[object]) -> None:
    error = future.exception()
    if error is not None:
        logger.warning("a shared-state update failed: %s", error)
