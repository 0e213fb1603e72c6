"""Stop a chunk mid-synthesis when its client leaves: a thread that watches the stream being synthesized.

The loop only reads the board between chunks; a chunk can take seconds. While a chunk is synthesized this
thread reads that stream's board entry every WATCH_EVERY_S and, if the stream stopped (client gone, cut
for idleness, shutdown), interrupts the engine, which abandons the chunk at its next convolution or
kernel. One thread per worker, with its own connection to the manager.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from ..ipc.manager import BoardProxy

__all__ = ["WATCH_EVERY_S", "ChunkWatch"]

logger = logging.getLogger(__name__)

WATCH_EVERY_S = 0.05


class ChunkWatch:
    """`with watch.chunk(key): ...` resets the engine, then interrupts it if `key` stops meanwhile."""

    def __init__(self, board: BoardProxy, interrupt: Callable[[], None], reset: Callable[[], None]) -> None:
        self._board, self._interrupt, self._reset = board, interrupt, reset
        self._lock = threading.Condition()
        self._key: str | None = None
        self._generation = 0
        self._thread = threading.Thread(target=self._run, name="tts-chunk-watch", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def chunk(self, key: str) -> Iterator[None]:
        with self._lock:
            self._key, self._generation = key, self._generation + 1
            self._reset()  # under the lock: a late interrupt meant for the previous chunk cannot land after
            self._lock.notify()
        try:
            yield
        finally:
            with self._lock:
                self._key = None

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._key is None:
                    self._lock.wait()
                key, generation = self._key, self._generation
            while self._watching(generation, WATCH_EVERY_S):
                try:
                    stopped = self._board.poll([key])[key].stopped
                except Exception:  # the manager is gone (shutdown): nothing to watch for
                    logger.debug("chunk watch cannot read the board", exc_info=True)
                    return
                if stopped:
                    with self._lock:
                        if self._generation == generation and self._key is not None:
                            self._interrupt()
                    break
            with self._lock:  # wait for the next chunk
                while self._generation == generation and self._key is not None:
                    self._lock.wait()

    def _watching(self, generation: int, wait_s: float) -> bool:
        """Still the same chunk after `wait_s`?"""
        with self._lock:
            if wait_s:
                self._lock.wait_for(lambda: self._generation != generation or self._key is None, wait_s)
            return self._generation == generation and self._key is not None
