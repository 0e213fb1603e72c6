"""SpeechAPI: the LitServe API of the inference workers. Its `setup` makes the WorkerRuntime; its loop serves.

LitServe pickles the API (with its loop) into every worker and calls `setup` there. The constructor only
stores settings and proxies; the engine, the scheduler and the rest are made in `setup`. Requests never go
through LitServe's decode/predict/encode hooks: `SpeechLoop` (loop.py) takes them from the queue and runs
many streams at once on the runtime (runtime.py).
"""

from __future__ import annotations

import signal

import litserve as ls

from ..ipc.manager import Shared
from ..ipc.stopping import heed_only_when_stopping
from ..logs import configure_logging
from ..settings import Settings
from .loop import SpeechLoop
from .runtime import WorkerRuntime

__all__ = ["SPEECH_PATH", "SpeechAPI"]

SPEECH_PATH = "/v1/audio/speech"


class SpeechAPI(ls.LitAPI):
    """See the module docstring."""

    def __init__(self, settings: Settings, shared: Shared) -> None:
        super().__init__(stream=True, api_path=SPEECH_PATH, loop=SpeechLoop())
        self.settings = settings
        self.shared = shared
        self.runtime: WorkerRuntime | None = None

    def setup(self, device: str) -> None:
        # Ctrl-C reaches the whole process group, and so may SIGTERM (systemd, `kill -- -PGID`): main
        # drains first, then stops the workers itself (SIGTERM, once its stop flag is set).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        heed_only_when_stopping(self.shared.stopping, (signal.SIGTERM,))
        configure_logging(self.settings.log_level)
        self.runtime = WorkerRuntime.load(self.settings, self.shared, device)
