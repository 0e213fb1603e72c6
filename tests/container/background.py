"""The image build as a background process beside the test session, and waiting for its results.

The build takes minutes of mostly one core; the rest of the suite leaves room for it. So it starts as soon
as the tests are collected, at low priority (tests/background.py: the other tests keep their speed), and
the tests that need the image run last and wait here for its result.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.background import Background
from tests.container.build import BuildResult

__all__ = ["BackgroundBuild"]

POLL_S = 1.0


class BackgroundBuild:
    """`python -m tests.container.build` running beside the session; its results as they come."""

    def __init__(self, run: Background, cuda_variant: bool) -> None:
        self.run = run
        self.out = run.out
        self.cuda_variant = cuda_variant

    @classmethod
    def start(cls, cuda_variant: bool) -> BackgroundBuild:
        """Start building now, niced, into a fresh folder."""
        out = Path(tempfile.mkdtemp(prefix="tts-api-image-"))
        command = [sys.executable, "-m", "tests.container.build", str(out)]
        return cls(Background([*command, *(["--cuda-variant"] if cuda_variant else [])], out), cuda_variant)

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
            if self.run.process.poll() is not None and self.done(name) is None:
                raise RuntimeError(
                    f"the build process exited with {self.run.process.returncode}:\n{self.tail()}"
                )
            time.sleep(POLL_S)
        raise RuntimeError(f"no result for {name} after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        """The end of what the build said (its driver's output and errors, then podman's)."""
        text = ""
        for path in (self.out / "stdout", self.out / "stderr", self.log):
            if path.is_file():
                text += path.read_text(errors="replace")[-chars:]
        return text

    def stop(self) -> None:
        """End the build if it still runs (the session is over)."""
        self.run.stop()
