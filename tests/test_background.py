"""The background runner puts its command's sessions behind the tests' (tests/background.py)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.background import NICE, Background

# After a second, a child in a session of its own, as a container runtime starts the image build's steps.
LATER_SESSION = (
    "import subprocess, time; time.sleep(1); subprocess.run(['sleep', '30'], start_new_session=True)"
)


def _autogroup(pid: int) -> tuple[str, int]:
    """The autogroup (session group) `pid` is in, and its nice value: "/autogroup-12 nice 0"."""
    name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
    return name, int(nice)


def test_its_session_and_a_session_it_starts_later_run_behind_the_tests(tmp_path: Path) -> None:
    if not Path("/proc/self/autogroup").exists():
        pytest.skip("this kernel shares no CPU time by session (no autogroup): the nice values alone count")
    ours = _autogroup(os.getpid())
    run = Background([sys.executable, "-c", LATER_SESSION], tmp_path)
    try:
        group = _autogroup(run.process.pid)
        assert group[0] != ours[0] and group[1] == NICE
        later = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = psutil.Process(run.process.pid).children()
            if children and (later := _autogroup(children[0].pid))[1] == NICE:
                break
            time.sleep(0.1)
        assert later is not None and later[0] not in (ours[0], group[0]), later
        assert later[1] == NICE
        assert _autogroup(os.getpid()) == ours  # the tests' own session is left as it was
    finally:
        # Its own session is not in the runner's process group: stopped here.
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(run.process.pid).children(recursive=True):
                child.kill()
        run.stop()
