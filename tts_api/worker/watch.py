"""Stop a chunk mid-synthesis when its client leaves: a thread that watches the stream being synthesized.

The loop only reads the board between chunks; a chunk can take seconds. While a chunk is synthesized this
thread reads that stream's board entry every WATCH_EVERY_S and, if the stream stopped (client gone, cut
for idleness, shutdown), interrupts the engine, which abandons the chunk at its next convolution or
kernel. One thread per worker, with its own connection to the manager. It lives as long as the worker:
a failed read is logged (at WARNING, at most every LOG_EVERY_S) and retried after a growing pause, so
mid-chunk cancellation comes back as soon as the board answers again; meanwhile the loop still stops
cancelled streams at chunk boundaries.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from ..ipc.manager import BoardProxy

__all__ = ["LOG_EVERY_S", "RETRY_MAX_S", "WATCH_EVERY_S", "ChunkWatch"]

logger = logging.getLogger(__name__)

WATCH_EVERY_S = 0.05
RETRY_MAX_S = 2.0  # the longest pause between two attempts after failures
LOG_EVERY_S = 60.0  # a failure that persists is logged again this often


class ChunkWatch:
    """`with watch.chunk(key, ...): ...` resets the engine, then interrupts it if every one of the keys
    stops meanwhile (a batched step goes on while any of its streams still wants its chunk)."""

    def __init__(self, board: BoardProxy, interrupt: Callable[[], None], reset: Callable[[], None]) -> None:
        self._board, self._interrupt, self._reset = board, interrupt, reset
        self._lock = threading.Condition()
        self._keys: tuple[str, ...] | None = None
        self._generation = 0
        self._failures = 0
        self._logged_at = -LOG_EVERY_S
        self._thread = threading.Thread(target=self._run, name="tts-chunk-watch", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def chunk(self, *keys: str) -> Iterator[None]:
        with self._lock:
            self._keys, self._generation = keys, self._generation + 1
            self._reset()  # under the lock: a late interrupt meant for the previous chunk cannot land after
            self._lock.notify()
        try:
            yield
        finally:
            with self._lock:
                self._keys = None

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._keys is None:
                    self._lock.wait()
                keys, generation = self._keys, self._generation
            pause = WATCH_EVERY_S
            while self._watching(generation, pause):
                try:
                    if self._stopped(keys, generation):
                        break
                except Exception as exc:
                    self._failed(exc)
                    pause = min(RETRY_MAX_S, WATCH_EVERY_S * 2 ** min(self._failures, 8))
                    continue
                self._recovered()
                pause = WATCH_EVERY_S
            with self._lock:  # wait for the next chunk
                while self._generation == generation and self._keys is not None:
                    self._lock.wait()

    def _stopped(self, keys: tuple[str, ...], generation: int) -> bool:
        """Read the entries and interrupt the engine if all their streams stopped; True when that settles
        the chunk."""
        if not all(state.stopped for state in self._board.poll(list(keys)).values()):
            return False
        with self._lock:
            if self._generation == generation and self._keys is not None:
                self._interrupt()
        return True

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            logger.warning(
                "mid-chunk cancellation paused: the board cannot be read (%s: %s); retrying "
                "(failure %d; cancellation still happens between chunks)",
                type(exc).__name__,
                exc,
                self._failures,
            )

    def _recovered(self) -> None:
        if self._failures:
            logger.info("mid-chunk cancellation resumed after %d failed board reads", self._failures)
            self._failures = 0
            self._logged_at = -LOG_EVERY_S

    def _watching(self, generation: int, wait_s: float) -> bool:
        """Still the same chunk after `wait_s`?"""
        with self._lock:
            if wait_s:
                self._lock.wait_for(lambda: self._generation != generation or self._keys is None, wait_s)
            return self._generation == generation and self._keys is not None
