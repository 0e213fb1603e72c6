"""Run the Wyoming service: listen on TCP, answer every connection through one SpeechServer.

`tts-api wyoming --server URL --port N` runs it alone; `server.py --wyoming-port N` runs it as a child
process pointed at the server's own loopback address (`python -m tts_api.wyoming`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from functools import partial

from wyoming.server import AsyncTcpServer

from ..clients.http import DEFAULT_SERVER
from ..logs import configure_logging
from .handler import SpeechHandler
from .speech import READ_TIMEOUT_S, SpeechServer

__all__ = ["DEFAULT_PORT", "main", "run_service"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 10200  # the port Wyoming TTS services (wyoming-piper) conventionally use


async def serve(
    server_url: str,
    host: str,
    port: int,
    *,
    voice: str,
    api_key: str | None,
    read_timeout_s: float | None = None,
) -> None:
    """Serve until SIGTERM (the wyoming package stops its TCP server on it) or cancellation."""
    server = SpeechServer(server_url, default_voice=voice, api_key=api_key, read_timeout_s=read_timeout_s)
    try:
        tcp = AsyncTcpServer(host, port)
        logger.info("Wyoming service on tcp://%s:%d, speaking through %s", host, port, server.url)
        await tcp.run(partial(SpeechHandler, server=server))
    finally:
        await server.aclose()
        logger.info("Wyoming service stopped")


def run_service(
    server_url: str,
    host: str,
    port: int,
    *,
    voice: str = "af_heart",
    api_key: str | None = None,
    read_timeout_s: float | None = None,
) -> int:
    """Run the service in this process until stopped; return an exit code."""
    configure_logging("info")
    try:
        asyncio.run(
            serve(server_url, host, port, voice=voice, api_key=api_key, read_timeout_s=read_timeout_s)
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
    args = parser.parse_args(argv)
    # The key travels in the environment, not on the command line, where `ps` would show it.
    return run_service(
        args.server,
        args.host,
        args.port,
        voice=args.voice,
        api_key=os.environ.get("TTS_API_KEY"),
        read_timeout_s=args.timeout,
    )
