"""One container of the image, run as the README runs it, on loopback ports; removed when done."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

import httpx

from tests.container.engine import Podman
from tts_api.processes import free_port

__all__ = ["Container"]

HTTP_PORT = 8000  # the image's TTS_PORT
WYOMING_PORT = 10200  # the image's TTS_WYOMING_PORT


class Container:
    """`podman run -d` of `image` with both ports published on 127.0.0.1: its URL, its health, its end."""

    def __init__(self, podman: Podman, image: str, name: str, *run_args: str) -> None:
        self.podman = podman
        self.image = image
        self.name = name
        self.http_port = free_port()
        self.wyoming_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.started = time.monotonic()
        podman.run(
            "run",
            "--detach",
            f"--name={name}",
            f"--publish=127.0.0.1:{self.http_port}:{HTTP_PORT}",
            f"--publish=127.0.0.1:{self.wyoming_port}:{WYOMING_PORT}",
            *run_args,
            image,
        )

    @classmethod
    def start(cls, podman: Podman, image: str, *run_args: str) -> Container:
        """A container named after this process, so that parallel sessions never collide."""
        return cls(podman, image, f"tts-api-test-{os.getpid()}-{time.monotonic_ns()}", *run_args)

    def wait_healthy(self, timeout: float) -> float:
        """Poll GET /health until 200; the seconds since `podman run`. Raise with the logs if it never is."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.exit_code()}:\n{self.logs()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return time.monotonic() - self.started
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f} s:\n{self.logs()[-4000:]}")

    def exec(self, *command: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run `command` in the container as the image's user."""
        return self.podman.run("exec", self.name, *command, timeout=timeout, check=False)

    def python(self, code: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run Python `code` in the container (the image's venv) as the image's user."""
        return self.exec("python", "-c", code, timeout=timeout)

    def inspect(self, template: str) -> str:
        return self.podman.run("container", "inspect", f"--format={template}", self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def exit_code(self) -> int:
        return int(self.inspect("{{.State.ExitCode}}"))

    def logs(self) -> str:
        done = self.podman.run("logs", self.name, check=False)
        return done.stdout + done.stderr

    def remove(self) -> None:
        """Kill it if it still runs, and remove it."""
        self.podman.run("rm", "--force", "--time=0", self.name, check=False)
