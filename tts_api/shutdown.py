"""Shut a server down gracefully on SIGTERM or Ctrl-C, and leave no process behind.

The first signal starts a drain: the board refuses new requests (the front answers 503, `/health` says
`draining`), requests in flight get up to `grace_s` to finish, then what remains is cancelled visibly
(each client gets an error, never a clean short file). Then LitServe's own shutdown stops the HTTP
servers and the workers. A second signal skips the wait.
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

__all__ = ["GracefulShutdown", "stop_children", "stop_on_signals"]

logger = logging.getLogger(__name__)

POLL_S = 0.2
CANCEL_SETTLE_S = 10.0  # after cancelling, how long workers get to send the errors and close entries


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
    """The drain described in the module docstring; `install` once the board exists."""

    def __init__(self, board: BoardProxy, grace_s: float) -> None:
        self.board = board
        self.grace_s = grace_s
        self._main_pid = os.getpid()
        self._draining = False
        self._done = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._main_pid:
            sys.exit(0)  # a forked child that has not installed its own handlers yet
        if self._done or self._draining:
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


def stop_children() -> None:
    """Terminate any process we started that is still alive (e.g. interrupted during start-up)."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
