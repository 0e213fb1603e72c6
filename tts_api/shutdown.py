"""Stop a LitServe server and everything it started on SIGTERM as on Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from types import FrameType

__all__ = ["stop_children", "stop_on_signals"]


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


def stop_children() -> None:
    """Terminate any process we started that is still alive (e.g. interrupted during start-up)."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
