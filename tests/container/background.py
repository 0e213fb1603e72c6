"""The image build as a background process beside the test session, and waiting for its results.

The build takes minutes of mostly one core; the rest of the suite leaves room for it. So it starts as soon
as the tests are collected, at low priority (the other tests keep their speed), and the tests that need
the image run last and wait here for its result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.container.build import BuildResult
from tts_api.processes import ROOT

__all__ = ["BackgroundBuild"]

POLL_S = 1.0


class BackgroundBuild:
    """`python -m tests.container.build` running in its own process group; its results as they come."""

    def __init__(self, out: Path, process: subprocess.Popen[bytes], cuda_variant: bool) -> None:
        self.out = out
        self.process = process
        self.cuda_variant = cuda_variant
        self.started = time.monotonic()

    @classmethod
    def start(cls, cuda_variant: bool) -> BackgroundBuild:
        """Start building now, niced, into a fresh folder."""
        out = Path(tempfile.mkdtemp(prefix="tts-api-image-"))
        command = [sys.executable, "-m", "tests.container.build", str(out)]
        if cuda_variant:
            command.append("--cuda-variant")
        if shutil.which("nice"):
            command = ["nice", "-n", "10", *command]
        with (out / "driver.log").open("wb") as log:
            process = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(out, process, cuda_variant)

    @property
    def log(self) -> Path:
        return self.out / "build.log"

    def done(self, name: str) -> BuildResult | None:
        """The result of build `name` if it has ended."""
        path = self.out / f"{name}.json"
        return BuildResult.load(path) if path.is_file() else None

    def wait(self, name: str, timeout: float) -> BuildResult:
        """The result of build `name`, waiting up to `timeout` s for it; raise if it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.done(name)
            if result is not None:
                return result
            if self.process.poll() is not None and self.done(name) is None:
                raise RuntimeError(f"the build process exited with {self.process.returncode}:\n{self.tail()}")
            time.sleep(POLL_S)
        raise RuntimeError(f"no result for {name} after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        """The end of what the build said (its driver's errors, then podman's output)."""
        text = ""
        for path in (self.out / "driver.log", self.log):
            if path.is_file():
                text += path.read_text(errors="replace")[-chars:]
        return text

    def stop(self) -> None:
        """End the build if it still runs (the session is over): SIGTERM its group, then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
