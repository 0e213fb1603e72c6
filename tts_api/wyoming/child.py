"""Start the Wyoming service as a child of the server (`--wyoming-port`), and stop it with the server."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

from ..settings import Settings

__all__ = ["loopback_url", "wyoming_child"]

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0  # shutdown.WYOMING_STOP_S counts it in a stop's budget


def loopback_url(settings: Settings) -> str:
    """The server's own HTTP address as seen from this machine, whatever address it binds."""
    host = "[::1]" if settings.host == "::" else "127.0.0.1"
    return f"http://{host}:{settings.port}"


@contextlib.contextmanager
def wyoming_child(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """Run `python -m tts_api.wyoming` beside the server while the block runs (nothing without a port)."""
    if settings.wyoming_port is None:
        yield None
        return
    command = [
        sys.executable,
        "-m",
        "tts_api.wyoming",
        "--server",
        loopback_url(settings),
        "--host",
        settings.wyoming_host,
        "--port",
        str(settings.wyoming_port),
        # A signal to the whole process group is main's to answer (it drains); the child ends with our pipe.
        "--until-stdin-closes",
    ]
    env = dict(os.environ)
    if settings.api_key is not None:
        env["TTS_API_KEY"] = settings.api_key.get_secret_value()  # not on the command line, where ps shows it
    child = subprocess.Popen(command, env=env, stdin=subprocess.PIPE)
    logger.info(
        "Wyoming service starting on %s:%d (pid %d)", settings.wyoming_host, settings.wyoming_port, child.pid
    )
    _warn_about_the_key(settings)
    try:
        yield child
    finally:
        _stop(child)


def _warn_about_the_key(settings: Settings) -> None:
    if settings.api_key is None:
        return
    if settings.wyoming_host != settings.host:
        logger.info(
            "the Wyoming service listens on %s only: Wyoming cannot send the API key that /v1/* requires. "
            "Run Home Assistant on this machine, or pass --wyoming-open (TTS_WYOMING_OPEN=1) to serve it on "
            "%s for anyone who can reach the port",
            settings.wyoming_host,
            settings.host,
        )
    elif settings.wyoming_open:
        logger.warning(
            "--wyoming-open: the Wyoming service on %s:%d synthesizes for anyone who reaches it, without "
            "the API key that /v1/* requires (Wyoming has no authentication); firewall the port",
            settings.host,
            settings.wyoming_port,
        )


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.stdin is not None:
        child.stdin.close()  # its signal to stop: it closes its server and connections
    if child.poll() is None:
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if child.returncode != 0:
        logger.warning("the Wyoming service exited with %s", child.returncode)
