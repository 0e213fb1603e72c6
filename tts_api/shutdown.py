"""Shut a server down gracefully on SIGTERM or Ctrl-C, and leave no process behind.

The first signal starts a drain: the board refuses new requests (the front answers 503, `/health` says
`draining`), requests in flight get up to `grace_s` to finish, then what remains is cancelled visibly
(each client gets an error, never a clean short file). Then LitServe's own shutdown stops the HTTP
servers and the workers. A second signal skips the wait. The signal may reach the whole process group:
the other processes leave it to main (ipc/stopping.py), so the drain is the same either way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from types import FrameType

from .ipc.manager import BoardProxy
from .ipc.stopping import StopFlag
from .settings import Settings

__all__ = [
    "HTTP_STOP_S",
    "MONITOR_STOP_S",
    "GracefulShutdown",
    "stop_budget_s",
    "stop_children",
    "stop_on_signals",
]

logger = logging.getLogger(__name__)

POLL_S = 0.2
CANCEL_SETTLE_S = 10.0  # after cancelling, how long workers get to send the errors and close entries
# LitServe's stop after the drain, each wait followed by a kill: every HTTP server in turn (uvicorn's
# graceful timeout, which litserver.py sets: after the drain nothing is left to finish), every worker in
# turn (LitServe's own 5 s), its manager; then ours, the Wyoming child, and whatever is left.
HTTP_STOP_S = 5.0
WORKER_STOP_S = 5.0
MONITOR_POLL_S = 0.2  # how often LitServe's worker monitor looks for dead workers (litserver.py)
MONITOR_STOP_S = 4.0  # LitServe's worker monitor: its shutdown event set, then its poll (litserver.py)
MANAGER_STOP_S = 2.0  # multiprocessing: a shutdown message, 1 s to exit, 1 s after SIGTERM, then SIGKILL
WYOMING_STOP_S = 5.0
CHILD_STOP_S = 5.0  # how long stop_children waits for the children together before it kills them


def stop_budget_s(settings: Settings, devices: int = 1) -> float:
    """The longest a stop can take, from SIGTERM to the last process gone: what an orchestrator's grace
    period (Kubernetes' terminationGracePeriodSeconds after its preStop hook, compose's
    stop_grace_period) must cover, or it kills the server mid-drain."""
    workers = devices * settings.workers_per_device
    http_servers = settings.api_servers or workers  # LitServe's default: one per worker
    return (
        settings.drain_grace_s
        + CANCEL_SETTLE_S
        + MONITOR_STOP_S
        + http_servers * HTTP_STOP_S
        + workers * WORKER_STOP_S
        + 2 * MANAGER_STOP_S  # LitServe's and ours
        + (WYOMING_STOP_S if settings.wyoming_port is not None else 0.0)
        + CHILD_STOP_S
    )


def stop_on_signals() -> None:
    """Make SIGTERM (docker stop, kill) shut down like Ctrl-C, which LitServe handles.

    The forked HTTP servers inherit this handler: uvicorn restores it after its own graceful
    shutdown and re-raises the signal, which must then end the child quietly, not with a traceback.
    """
    main_pid = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        sys.exit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class GracefulShutdown:
    """The drain described in the module docstring; `install` once the board exists.

    Main's thread is inside LitServe's `run()`; it is woken by raising KeyboardInterrupt there, once: after
    that it is stopping, and further signals are only logged.
    """

    def __init__(self, board: BoardProxy, grace_s: float) -> None:
        self.board = board
        self.grace_s = grace_s
        self._main_pid = os.getpid()
        self._draining = False
        self._done = False
        self._stopping = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def abort(self) -> None:
        """Stop now, without a drain (the shared state is gone: there is nothing to drain with)."""
        self._done = True
        os.kill(self._main_pid, signal.SIGTERM)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._main_pid:
            sys.exit(0)  # a forked child that has not installed its own handlers yet
        if self._stopping:
            logger.info("%s received: already stopping", signal.Signals(signum).name)
            return
        if self._done or self._draining:
            self._stopping = True
            raise KeyboardInterrupt  # the drain is over, or a second signal: stop now
        self._draining = True
        logger.info(
            "%s received: draining (up to %.0f s for requests in flight)",
            signal.Signals(signum).name,
            self.grace_s,
        )
        threading.Thread(target=self._drain, name="tts-drain", daemon=True).start()

    def _drain(self) -> None:
        try:
            self.board.drain()
            deadline = time.monotonic() + self.grace_s
            while self.board.size() and time.monotonic() < deadline:
                time.sleep(POLL_S)
            left = self.board.cancel_all("shutdown")
            if left:
                logger.warning("grace period over: cancelling %d requests still in flight", left)
                settle = time.monotonic() + CANCEL_SETTLE_S
                while self.board.size() and time.monotonic() < settle:
                    time.sleep(POLL_S)
            else:
                logger.info("every request finished; stopping")
        except Exception:
            logger.exception("draining failed; stopping anyway")
        finally:
            self._done = True
            os.kill(
                self._main_pid, signal.SIGTERM
            )  # wakes the main thread, which now raises KeyboardInterrupt


def stop_children(stopping: StopFlag | None = None) -> None:
    """Terminate any process we started that is still alive (e.g. interrupted during start-up); kill those
    still there after CHILD_STOP_S. `stopping` first tells them that this SIGTERM is main's."""
    if stopping is not None:
        stopping.set()
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + CHILD_STOP_S
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(timeout=1.0)
