"""Wire the server: LitServer around SpeechAPI, the speech gateway, the extra routes and the web page."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from litserve.connector import check_cuda_with_nvidia_smi
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import TTSError
from .front.auth import ApiKeyAuth, RequestIds
from .front.gateway import SpeechGateway
from .front.openapi import describe_api
from .front.page import add_page
from .front.readrate import ReaderLimits
from .front.routes import add_routes
from .front.signals import StopSignalGuard
from .front.sockets import SocketLimits, SocketRoutes
from .ipc.manager import Shared
from .litserver import SpeechLitServer
from .model.layout import ModelDir
from .schemas import RequestContext
from .settings import Settings
from .voices import VoiceCatalogue, installed_languages
from .worker.api import SPEECH_PATH, SpeechAPI

__all__ = ["build_server", "resolve_accelerator", "socket_limits"]

LITSERVE_ROUTES = frozenset({"/", "/health", "/info"})


def resolve_accelerator(settings: Settings) -> str:
    """The LitServe accelerator for `settings.device`; `auto` means CUDA when a GPU is visible.

    Decided with nvidia-smi, so the main process never initialises CUDA (its children are forked).
    """
    if settings.device != "auto":
        return settings.device
    return "cuda" if check_cuda_with_nvidia_smi() > 0 else "cpu"


def build_server(settings: Settings, shared: Shared) -> SpeechLitServer:
    """A LitServer ready to `run()`: workers load the model, the gateway guards the speech route."""
    files = ModelDir(settings.model_dir).require()
    context = RequestContext.from_settings(
        settings, VoiceCatalogue.from_dir(files.voices), installed_languages()
    )
    accelerator = resolve_accelerator(settings)
    gateway = {
        "context": context,
        "shared": shared,
        "path": SPEECH_PATH,
        "max_pending": settings.max_pending,
        "max_wait_s": settings.max_queue_wait_s,
        "limits": ReaderLimits(settings.idle_timeout_s, settings.min_read_rate, settings.read_window_s),
        "sockets": SocketRoutes(context, socket_limits(settings)),
    }
    server = SpeechLitServer(
        SpeechAPI(settings, shared),
        accelerator=accelerator,
        devices="auto" if accelerator == "cuda" else 1,
        workers_per_device=settings.workers_per_device,
        # LitServe's timeout only bounds queue wait and turns into an empty 200 when streaming.
        timeout=False,
        # Starlette runs the last added outermost: request ids, then the API key, then the gateway; the
        # stop-signal guard acts once, at lifespan start-up.
        middlewares=[
            (SpeechGateway, gateway),
            (ApiKeyAuth, {"api_key": settings.api_key.get_secret_value() if settings.api_key else None}),
            (RequestIds, {}),
            (StopSignalGuard, {"stopping": shared.stopping}),
        ],
        # A worker that dies is replaced; the gateway fails the requests it held (LitServe cannot).
        restart_workers=True,
        stopping=shared.stopping,
    )
    # LitServe's own /, /health and /info cannot see draining or say which worker is down: ours replace them.
    server.app.router.routes[:] = [
        route for route in server.app.router.routes if getattr(route, "path", None) not in LITSERVE_ROUTES
    ]
    add_routes(
        server.app,
        context=context,
        shared=shared,
        workers=lambda: server.workers_setup_status,
        engine=settings.engine,
    )
    describe_api(server.app, SPEECH_PATH)
    add_page(server.app)
    server.app.add_exception_handler(TTSError, _tts_error)
    server.app.add_exception_handler(StarletteHTTPException, _http_error)
    return server


def socket_limits(settings: Settings) -> SocketLimits:
    """The voice-agent sockets' bounds that `settings` configure."""
    return SocketLimits(
        max_contexts=settings.socket_max_contexts,
        max_message_bytes=settings.socket_max_message_bytes,
        max_messages_per_s=settings.socket_max_messages_per_s,
        inactivity_s=settings.socket_inactivity_s,
        max_inactivity_s=settings.socket_max_inactivity_s,
        max_chars=settings.socket_max_chars,
        send_timeout_s=settings.idle_timeout_s,
    )


async def _tts_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TTSError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own errors (404 unknown route, 405 wrong method) in the OpenAI shape."""
    assert isinstance(exc, StarletteHTTPException)
    error = TTSError(str(exc.detail), status=exc.status_code, type="invalid_request_error", code=None)
    return JSONResponse(error.body(), status_code=exc.status_code, headers=dict(exc.headers or {}))
