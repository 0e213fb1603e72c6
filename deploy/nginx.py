"""Run nginx unprivileged as the load balancer in front of tts-api replicas, from a generated config.

Everything nginx writes (config, pid, logs, temp files) lives under one prefix directory; it runs in
the foreground (`daemon off`) in its own process group, so `stop()` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tts_api.processes import free_port, kill_group, terminate

__all__ = ["TEMPLATE", "Nginx", "NginxMissing", "find_nginx", "render_config"]

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
# Debian installs it in /usr/sbin, which is not on an unprivileged user's PATH.
_SBIN_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
# A replica that refuses a connection is left out this long before nginx tries it again.
FAIL_TIMEOUT_S = 5
START_TIMEOUT_S = 15.0


class NginxMissing(RuntimeError):
    """Raised when no nginx binary can be found."""


def find_nginx() -> str | None:
    """The nginx binary on PATH or in the usual sbin directories, or None."""
    found = shutil.which("nginx")
    return found or next((p for p in _SBIN_PATHS if os.access(p, os.X_OK)), None)


def render_config(prefix: Path, listen: str, upstreams: Sequence[str]) -> str:
    """TEMPLATE filled in: listen on `listen`, balance over `upstreams` (both host:port)."""
    servers = "\n".join(
        f"        server {address} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;" for address in upstreams
    )
    replacements = {"@PREFIX@": str(prefix), "@LISTEN@": listen, "@SERVERS@": servers}
    text = TEMPLATE.read_text()
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


class Nginx:
    """One nginx master process (and its workers) balancing over `upstreams`, listening on loopback."""

    def __init__(
        self,
        prefix: Path,
        upstreams: Sequence[str],
        *,
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        binary = binary or find_nginx()
        if binary is None:
            raise NginxMissing("nginx is not installed; on Debian or Ubuntu: apt-get install nginx")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = prefix
        for directory in ("logs", "temp"):
            (prefix / directory).mkdir(parents=True, exist_ok=True)
        self.config_path = prefix / "nginx.conf"
        self.config_path.write_text(render_config(prefix, f"127.0.0.1:{self.port}", upstreams))
        self.error_log = prefix / "logs" / "error.log"
        self.access_log = prefix / "logs" / "access.log"
        self.output_path = prefix / "logs" / "nginx.out"
        self._output = self.output_path.open("wb")
        self.process = subprocess.Popen(
            # -e: the error log before the config is read (the default is a system path).
            [binary, "-p", str(prefix), "-c", str(self.config_path), "-e", str(self.error_log)],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        """nginx's error log, or its own output when it failed before opening that log."""
        for path in (self.error_log, self.output_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            if text.strip():
                return text
        return ""

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> Nginx:
        """Block until nginx accepts connections; raise with its log if it exits or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            # nginx writes its pid file only once it has bound the port, so a connection accepted
            # before that may be some other program's.
            if self._pid_written():
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx not accepting connections after {timeout:.0f} s:\n{self.log()[-4000:]}")

    def _pid_written(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            return int((self.prefix / "nginx.pid").read_text()) == self.process.pid
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGTERM to the master), then kill its process group if anything is left."""
        terminate(self.process, timeout)
        kill_group(self.process)  # workers that outlived their master
        self._output.close()
