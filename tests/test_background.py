"""The background runner puts its command behind the tests (tests/background.py): its processes' nice
value, and, where the kernel shares CPU time by session first (autogroup), its session's and those of the
sessions it starts later."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.background import NICE, Background

# After a second, a child in a session of its own, as a container runtime starts the image build's steps.
LATER_SESSION = (
    "import subprocess, time; time.sleep(1); subprocess.run(['sleep', '30'], start_new_session=True)"
)


def _autogroup(pid: int) -> tuple[str, int] | None:
    """The autogroup (session group) `pid` is in, and its nice value ("/autogroup-12 nice 0"); None where
    sessions do not count: no autogroup in the kernel, or the process is in a cgroup of its own (a
    container, a systemd unit: CI's case), where the kernel shows the file empty and shares CPU by cgroup."""
    try:
        fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    except FileNotFoundError:
        return None
    return (fields[0], int(fields[2])) if fields else None


def _behind(pid: int) -> bool:
    """Whether `pid` runs behind the tests: its own nice value, and its session's where sessions count."""
    group = _autogroup(pid)
    return psutil.Process(pid).nice() == NICE and (group is None or group[1] == NICE)


def _soon(pid: Callable[[], int | None], ready: Callable[[int], bool] = lambda found: True) -> int | None:
    """The process `pid()` names once it is `ready` and runs behind the tests (within 10 s), else the last
    one named: the `nice` program lowers its own priority only after it has started, and a later session
    comes later."""
    found = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (found := pid()) is not None and ready(found) and _behind(found):
            break
        time.sleep(0.05)
    return found


def test_its_session_and_a_session_it_starts_later_run_behind_the_tests(tmp_path: Path) -> None:
    ours = _autogroup(os.getpid())
    run = Background([sys.executable, "-c", LATER_SESSION], tmp_path)
    try:
        job = _soon(lambda: run.process.pid)
        assert job is not None and _behind(job)
        job_group = _autogroup(job)

        def own_session(pid: int) -> bool:
            # setsid() shows the new session first and moves the process to its autogroup just after:
            # until then it is still in the job's group, and "behind" would be the job's nice value.
            return os.getsid(pid) == pid and (ours is None or _autogroup(pid) != job_group)

        later = _soon(lambda: next((c.pid for c in psutil.Process(job).children()), None), own_session)
        assert later is not None and _behind(later)
        assert os.getsid(later) == later  # it did start a session of its own
        if ours is not None:
            later_group = _autogroup(later)
            assert job_group is not None and later_group is not None
            assert later_group[0] not in (ours[0], job_group[0])
            assert _autogroup(os.getpid()) == ours  # the tests' own session is left as it was
    finally:
        # Its own session is not in the runner's process group: stopped here.
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(run.process.pid).children(recursive=True):
                child.kill()
        run.stop()
