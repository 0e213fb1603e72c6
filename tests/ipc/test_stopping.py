"""Children leave SIGTERM to main until main's stop flag says the signal is its own."""

from __future__ import annotations

import multiprocessing
import signal
import time

from tts_api.ipc.stopping import StopFlag, heed_only_when_stopping

WAIT_S = 30.0


def _child(flag: StopFlag, ready: multiprocessing.synchronize.Event) -> None:
    heed_only_when_stopping(flag, (signal.SIGTERM,))
    ready.set()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # until a heeded SIGTERM ends it
        time.sleep(0.05)


def test_a_child_heeds_sigterm_only_once_main_set_the_stop_flag() -> None:
    context = multiprocessing.get_context("spawn")  # as LitServe starts its workers
    flag, ready = StopFlag(), context.Event()
    child = context.Process(target=_child, args=(flag, ready))
    child.start()
    try:
        assert ready.wait(WAIT_S)
        child.terminate()  # SIGTERM sent to the whole group: main's to answer
        child.join(1.0)
        assert child.is_alive()
        flag.set()  # main now stops its children
        child.terminate()
        child.join(WAIT_S)
        assert child.exitcode == -signal.SIGTERM
    finally:
        child.kill()
        child.join()
