"""The chunk watch survives a board that fails to answer: it logs, retries, and still interrupts."""

from __future__ import annotations

import logging
import threading

import pytest

from tts_api.ipc.streams import StreamBoard, StreamState
from tts_api.worker.watch import ChunkWatch

WAIT_S = 10.0


class FlakyBoard(StreamBoard):
    """A board whose first reads fail, as through a manager connection that broke for a moment."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def poll(self, keys: list[str]) -> dict[str, StreamState]:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("the manager did not answer")
        return super().poll(keys)


def test_the_watch_survives_failed_reads_and_still_interrupts(caplog: pytest.LogCaptureFixture) -> None:
    board = FlakyBoard(failures=3)
    board.open("k", limit=1)
    interrupted = threading.Event()
    watch = ChunkWatch(board, interrupt=interrupted.set, reset=lambda: None)
    with caplog.at_level(logging.WARNING, logger="tts_api.worker.watch"), watch.chunk("k"):
        board.cancel("k")  # the client leaves while the chunk is synthesized
        assert interrupted.wait(WAIT_S), "the watch stopped watching after a failed read"
    assert board.failures == 0
    assert [r.levelno for r in caplog.records if r.name == "tts_api.worker.watch"][:1] == [logging.WARNING]
    # ...and it goes on watching the next chunks.
    interrupted.clear()
    board.open("next", limit=2)
    with watch.chunk("next"):
        board.cancel("next")
        assert interrupted.wait(WAIT_S)
