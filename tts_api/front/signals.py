"""An HTTP server process leaves SIGTERM and SIGINT to main, which drains first (ipc/stopping.py)."""

from __future__ import annotations

import threading

from starlette.types import ASGIApp, Receive, Scope, Send

from ..ipc.stopping import StopFlag, heed_only_when_stopping

__all__ = ["StopSignalGuard"]


class StopSignalGuard:
    """ASGI middleware. At lifespan start-up, uvicorn has just installed its own SIGTERM and SIGINT handlers
    (a graceful stop of this process alone): from then on they act only once main has set the stop flag,
    so a signal sent to the whole process group leaves this server serving through main's drain."""

    def __init__(self, app: ASGIApp, *, stopping: StopFlag) -> None:
        self.app = app
        self.stopping = stopping
        self._guarded = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Handlers can only be set from the main thread (a thread-mode API server has no signals of its own).
        if (
            scope["type"] == "lifespan"
            and not self._guarded
            and threading.current_thread() is threading.main_thread()
        ):
            heed_only_when_stopping(self.stopping)
            self._guarded = True
        await self.app(scope, receive, send)
