"""Run a server as a child process on a loopback port: start it, wait for /health, stop its whole tree.

Used by the tests, the benchmark and the local cluster. The child gets its own process group, so
nothing it starts (LitServe's spawned workers, forked HTTP servers, the manager) can outlive `stop()`:
stopping only the parent would leave the workers behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import psutil

__all__ = ["ROOT", "ServerProcess", "free_port", "kill_group", "server_command", "terminate", "wait_gone"]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300.0  # importing kokoro and loading a model takes 15-30 s on a quiet 2-core box


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM `process` and wait for it; SIGKILL it if it is still there after `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _running(process: psutil.Process) -> bool:
    """Still running: a zombie has ended, only its parent (init, for an orphan) has not reaped it yet."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(processes: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` for `processes` to end; return those still running."""
    deadline = time.monotonic() + timeout
    alive = [p for p in processes if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _running(p)]
    return alive


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of the process group `process` leads (it was started in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def server_command(port: int, *args: str) -> list[str]:
    """`python server.py` on 127.0.0.1:`port` with extra flags."""
    return [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port", str(port), *args]


class ServerProcess:
    """One server process: its URL, its log, and every process it started (remembered once seen)."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        log_path: Path,
        *,
        name: str = "tts-api",
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._seen: dict[int, psutil.Process] = {}
        self.process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            start_new_session=True,  # its own process group: nothing it starts can outlive stop()
        )

    @classmethod
    def tts_api(
        cls, model_dir: Path, log_path: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> ServerProcess:
        """`python server.py --model-dir DIR ARGS` on a free port."""
        port = free_port()
        return cls(server_command(port, "--model-dir", str(model_dir), *args), port, log_path, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        """Poll GET /health until 200; raise with the log's tail if the server dies or never gets there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    self.tree()
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log()[-4000:]}")

    def tree(self) -> list[psutil.Process]:
        """The main process and all its descendants alive now (remembered, so stop() finds them all)."""
        try:
            main = psutil.Process(self.process.pid)
            processes = [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        self._seen.update((p.pid, p) for p in processes)
        return processes

    def stop(self, timeout: float = 30.0) -> list[psutil.Process]:
        """SIGTERM like `docker stop`, then kill what is left; return the processes that had to be killed."""
        tree = list({**self._seen, **{p.pid: p for p in self.tree()}}.values())
        terminate(self.process, timeout)
        survivors = wait_gone(tree, timeout=5)
        for proc in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        kill_group(self.process)  # anything that left the tree but kept the group
        self._log.close()
        return survivors
