"""A command that runs beside the test session, behind it (niced, its session too), and the test that waits
for what it said.

The quick benchmark (tests/test_bench.py) and the image build (tests/container/) take minutes, much of
them waiting (on real-time audio, servers starting, downloads); run beside the other tests, those minutes
overlap theirs instead of adding to them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from tts_api.processes import ROOT

__all__ = ["Background", "Finished"]

POLL_S = 0.5
NICE = 10


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


class Background:
    """One command in its own process group, its output in files under `out`."""

    def __init__(self, command: Sequence[str], out: Path, env: Mapping[str, str] | None = None) -> None:
        self.out = out
        nice = ["nice", "-n", str(NICE)] if shutil.which("nice") else []
        with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
            self.process = subprocess.Popen(
                [*nice, *command],
                cwd=ROOT,
                stdout=stdout,
                stderr=stderr,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # stop() ends everything it started
            )
        behind_the_tests(self.process.pid)
        # Containers (the image build's steps) start sessions of their own: each is put behind as it comes.
        threading.Thread(target=self._keep_behind, daemon=True).start()

    def wait(self, timeout: float) -> Finished:
        """What it said once it ended; TimeoutError (after stopping it) if it runs past `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"still running after {timeout:.0f} s:\n{self._read('stderr')[-3000:]}")
            time.sleep(POLL_S)
        return Finished(self.process.returncode, self._read("stdout"), self._read("stderr"))

    def stop(self) -> None:
        """SIGTERM its group, then SIGKILL what is left."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def _keep_behind(self) -> None:
        while self.process.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    behind_the_tests(child.pid)
            time.sleep(POLL_S)

    def _read(self, name: str) -> str:
        return (self.out / name).read_text(errors="replace")


def behind_the_tests(pid: int) -> None:
    """Give the session `pid` leads the nice value NICE as a whole.

    Where the scheduler shares CPU time among sessions first (autogroup: Debian's and these VMs' default), a
    new session weighs as much as the test session whatever its processes' own nice values (sched(7)), so
    the niced image build, bundle and benchmark took three shares of the CPU to the tests' one: the cluster
    tests' two replicas took minutes to start beside them. The session's autogroup nice is what counts."""
    # OSError: no autogroup (the processes' nice values then count), or the process has ended.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{NICE}\n")
