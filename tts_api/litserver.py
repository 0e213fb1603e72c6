"""LitServe's server as this one runs it: its manager outlives main's drain, and its children stop only
when main stops them (ipc/stopping.py)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

import litserve as ls

from .ipc.manager import manager_process
from .ipc.stopping import StopFlag, stop_signals_held
from .shutdown import HTTP_STOP_S, MONITOR_POLL_S, MONITOR_STOP_S, stop_children

__all__ = ["SpeechLitServer"]

logger = logging.getLogger(__name__)


class SpeechLitServer(ls.LitServer):
    """`ls.LitServer` with two changes to how its processes start and stop:

    - its manager process (its queues, its worker table) is forked with SIGTERM and SIGINT blocked, so a
      signal to the whole process group does not end it under the requests main is draining;
    - its HTTP server processes are kept (`http_processes`) for main's watchdog;
    - its shutdown first sets the stop flag, from which moment the HTTP servers and workers heed the
      SIGTERM it stops them with; if that shutdown fails (its manager gone), the children are stopped here;
      it waits HTTP_STOP_S, not 30 s, for each HTTP server (shutdown.py counts what a stop takes);
      it ends LitServe's worker monitor first (`_stop_monitoring`).
    """

    def __init__(self, *args: Any, stopping: StopFlag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = stopping
        self.manager_process: BaseProcess | None = None
        self.http_processes: dict[str, BaseProcess] = {}  # the uvicorn servers, by process name
        # LitServe waits 30 s for each HTTP server; after main's drain there is nothing left to finish.
        self.uvicorn_graceful_timeout = HTTP_STOP_S
        # LitServe looks for dead workers every 2 s, and a stop waits out that sleep (`_stop_monitoring`).
        # A look is a waitpid per worker: look often, so a dead worker is replaced and a stop goes on sooner.
        self.monitor_internal = MONITOR_POLL_S

    def _init_manager(self, num_api_servers: int) -> Any:
        with stop_signals_held():
            manager = super()._init_manager(num_api_servers)
        self.manager_process = manager_process(manager)
        return manager

    def _start_server(self, *args: Any, **kwargs: Any) -> Any:
        """LitServe's, keeping its HTTP server processes for main's watchdog: LitServe watches only its
        inference workers, and an HTTP server that dies would leave main waiting forever."""
        servers = super()._start_server(*args, **kwargs)
        self.http_processes = {p.name: p for p in servers.values() if isinstance(p, BaseProcess)}
        return servers

    def _perform_graceful_shutdown(
        self, manager: Any, uvicorn_workers: Any, shutdown_reason: str = "normal"
    ) -> None:
        self.stopping.set()
        self._stop_monitoring()
        try:
            super()._perform_graceful_shutdown(manager, uvicorn_workers, shutdown_reason)
        except Exception as exc:  # its manager is gone: its queues cannot say goodbye
            logger.warning(
                "LitServe's shutdown failed (%s: %s); stopping its processes directly",
                type(exc).__name__,
                exc,
            )
            stop_children(self.stopping)

    def _stop_monitoring(self) -> None:
        """End LitServe's monitor thread before the shutdown stops the workers and the manager: left
        running, it restarts a worker being stopped, or dies with a traceback reading the shutdown event
        from the stopped manager (LitServe sets that event only for its shutdown API).

        The event is set from a thread of its own: this thread's connection to the manager may still be
        inside the `wait()` the KeyboardInterrupt broke, and a second call on it would wait behind that.
        """
        event = self._shutdown_event
        if event is None:
            return

        def set_event() -> None:
            with contextlib.suppress(Exception):  # its manager is gone: so is the monitor's loop
                event.set()

        deadline = time.monotonic() + MONITOR_STOP_S
        setter = threading.Thread(target=set_event, name="litserve-shutdown-event", daemon=True)
        setter.start()
        setter.join(timeout=MONITOR_STOP_S)
        for thread in threading.enumerate():
            if thread.name == "litserve-monitoring":
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
