"""Run the Wyoming service: listen on TCP, answer every connection through one SpeechServer.

`tts-api wyoming --server URL --port N` runs it alone (SIGTERM or Ctrl-C stops it); `server.py
--wyoming-port N` runs it as a child process pointed at the server's own loopback address (`python -m
tts_api.wyoming --until-stdin-closes`): it then leaves SIGTERM and SIGINT to the server, which drains
first, and stops when the server closes its stdin (or dies).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from functools import partial

from wyoming.server import AsyncTcpServer

from ..clients.http import DEFAULT_SERVER
from ..logs import configure_logging
from .handler import SpeechHandler
from .speech import READ_TIMEOUT_S, SpeechServer

__all__ = ["DEFAULT_PORT", "main", "run_service"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 10200  # the port Wyoming TTS services (wyoming-piper) conventionally use


class _ChildTcpServer(AsyncTcpServer):
    """The wyoming package's TCP server without its SIGTERM handler: as the server's child this service
    keeps answering through the server's drain, and stops when its stdin closes."""

    def _register_stop_signal(self) -> None:
        pass

    def _unregister_stop_signal(self) -> None:
        pass


async def serve(
    server_url: str,
    host: str,
    port: int,
    *,
    voice: str,
    api_key: str | None,
    read_timeout_s: float | None = None,
    until_stdin_closes: bool = False,
) -> None:
    """Serve until SIGTERM (the wyoming package stops its TCP server on it), cancellation, or, with
    `until_stdin_closes`, the end of stdin."""
    server = SpeechServer(server_url, default_voice=voice, api_key=api_key, read_timeout_s=read_timeout_s)
    try:
        tcp = _ChildTcpServer(host, port) if until_stdin_closes else AsyncTcpServer(host, port)
        logger.info("Wyoming service on tcp://%s:%d, speaking through %s", host, port, server.url)
        serving = asyncio.ensure_future(tcp.run(partial(SpeechHandler, server=server)))
        if not until_stdin_closes:
            await serving
            return
        closed = asyncio.ensure_future(_stdin_closed())
        await asyncio.wait({serving, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if serving.done():  # it ended on its own: raise what ended it
            await serving
            return
        await tcp.stop()  # closes the listener and every connection; `run` then ends cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    finally:
        await server.aclose()
        logger.info("Wyoming service stopped")


async def _stdin_closed() -> None:
    """Return when stdin reaches its end: the parent closed it, or died."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    class _Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            if not ended.done():
                ended.set_result(None)

    transport, _ = await loop.connect_read_pipe(_Watch, sys.stdin)
    try:
        await ended
    finally:
        transport.close()


def run_service(
    server_url: str,
    host: str,
    port: int,
    *,
    voice: str = "af_heart",
    api_key: str | None = None,
    read_timeout_s: float | None = None,
    until_stdin_closes: bool = False,
) -> int:
    """Run the service in this process until stopped; return an exit code."""
    configure_logging("info")
    if until_stdin_closes:
        for sig in (signal.SIGTERM, signal.SIGINT):  # the server's own: it drains, then closes our stdin
            signal.signal(sig, signal.SIG_IGN)
    try:
        asyncio.run(
            serve(
                server_url,
                host,
                port,
                voice=voice,
                api_key=api_key,
                read_timeout_s=read_timeout_s,
                until_stdin_closes=until_stdin_closes,
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, or the address is not this machine's
        logger.error("cannot serve Wyoming on %s:%d: %s", host, port, exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tts_api.wyoming --server URL --host H --port N` (the API key comes from TTS_API_KEY)."""
    parser = argparse.ArgumentParser(prog="python -m tts_api.wyoming", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, help=f"tts-api server URL (default {DEFAULT_SERVER})"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--voice", default="af_heart", help="voice when a request names none")
    parser.add_argument(
        "--timeout",
        type=float,
        default=READ_TIMEOUT_S,
        help=f"seconds to wait for the server's audio (default {READ_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="run as the server's child: ignore SIGTERM and SIGINT, stop when stdin closes",
    )
    args = parser.parse_args(argv)
    # The key travels in the environment, not on the command line, where `ps` would show it.
    return run_service(
        args.server,
        args.host,
        args.port,
        voice=args.voice,
        api_key=os.environ.get("TTS_API_KEY"),
        read_timeout_s=args.timeout,
        until_stdin_closes=args.until_stdin_closes,
    )
