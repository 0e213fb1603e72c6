"""Start `python server.py` as a real process on a free loopback port, and stop its whole tree."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300  # importing kokoro and loading a model takes 15-30 s on a 2-core CI box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server under test: its URL, its log, and every process it started."""

    def __init__(
        self, model_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--model-dir", str(model_dir), *args]
        self._log = log_path.open("wb")
        self.started: list[psutil.Process] = []
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            start_new_session=True,  # its own process group, so nothing can outlive the test
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> ServerProcess:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    self.started = self.tree()
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not ready after {START_TIMEOUT_S} s:\n{self.log()[-4000:]}")

    def tree(self) -> list[psutil.Process]:
        """The main process and all its descendants that are alive now."""
        try:
            main = psutil.Process(self.process.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30) -> list[psutil.Process]:
        """SIGTERM the main process like `docker stop`; return the processes that had to be killed."""
        tree = list({p.pid: p for p in [*self.started, *self.tree()]}.values())
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _, survivors = psutil.wait_procs(tree, timeout=5)
        for proc in survivors:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything that left the tree but kept the group
        self._log.close()
        return survivors
