"""Main's watch, every half second, over what the server cannot run without: the two manager processes
(its shared state, LitServe's queues) and the HTTP server processes; and, every second, the stream
board's entries whose worker died.

A dead manager takes every request in flight with it, and every process holds proxies to it that cannot
be pointed at a new one (LitServe cannot replace its own at all). A dead HTTP server (killed for memory,
say) leaves its port to the others, or to nobody, and LitServe neither notices nor starts another. So the
server does not limp on, and its workers do not crash-loop reloading the model: the watchdog logs which
process died, refuses new requests (the board drains: `/health` says so, or answers 503 `unavailable`
when the shared state itself is gone), main stops every process and exits with EXIT_LOST, and the
supervisor (systemd, Docker's restart policy, Kubernetes) starts it afresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.process import BaseProcess

from .ipc.manager import BoardProxy
from .ipc.stopping import StopFlag

__all__ = ["EXIT_LOST", "WATCH_EVERY_S", "Watchdog"]

logger = logging.getLogger(__name__)

EXIT_LOST = 1  # the server stopped because a process it cannot run without died
WATCH_EVERY_S = 0.5
REAP_EVERY_S = 1.0


class Watchdog:
    """A daemon thread in main: see the module docstring. `lost` says what died, once something has."""

    def __init__(
        self,
        board: BoardProxy,
        essentials: Callable[[], Mapping[str, BaseProcess | None]],
        stopping: StopFlag,
        on_lost: Callable[[], None],
    ) -> None:
        self.board, self.essentials, self.stopping, self.on_lost = board, essentials, stopping, on_lost
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._run, name="tts-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        reap_at = 0.0
        while not self.stopping.is_set():
            dead = self._dead_process()
            if dead is not None:
                self.lost = dead
                with contextlib.suppress(Exception):  # the shared state may be what died
                    self.board.drain()
                logger.error(
                    "%s: the server cannot run without it; stopping every process (exit code %d) for the "
                    "supervisor to restart the server",
                    dead,
                    EXIT_LOST,
                )
                self.on_lost()
                return
            if time.monotonic() >= reap_at:
                reap_at = time.monotonic() + REAP_EVERY_S
                self._reap()
            time.sleep(WATCH_EVERY_S)

    def _dead_process(self) -> str | None:
        for name, process in self.essentials().items():
            # Stopping (a normal shutdown ends the managers too) is checked after: it may have just begun.
            if process is not None and not process.is_alive() and not self.stopping.is_set():
                return f"{name} (pid {process.pid}) died with exit code {process.exitcode}"
        return None

    def _reap(self) -> None:
        try:
            closed = self.board.reap()
        except Exception as exc:  # a dead manager is reported by the next round
            logger.debug("cannot reap the board: %s", exc)
            return
        if closed:
            logger.warning("closed %d board entries whose worker process died", closed)
