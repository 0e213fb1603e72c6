"""Routes beside the speech endpoint: health, info, the voice and model lists, metrics.

Every shared-state read goes through the loop's IPC helper (a thread, with a deadline), so a slow or
dead manager process makes `/health` answer 503 `unavailable` (saying why), never hang or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from .. import __version__
from ..errors import NotFound
from ..ipc.counters import Series, Snapshot
from ..ipc.manager import Shared
from ..schemas import MODEL_IDS, RequestContext
from ..settings import EMULATED_PREFIX
from ..voices import LANGUAGES, OPENAI_VOICES
from .ipc import IpcError, LoopIpc
from .metrics import render

__all__ = ["add_routes", "server_load"]

# A fixed creation time (Kokoro-82M v1.0's release, 2025-01-27) keeps the listing stable.
MODEL_CREATED = 1737936000
_READY = "ready"  # LitServe's WorkerSetupStatus.READY


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "tts-api"}


def server_load(snapshot: Snapshot, in_flight: int) -> float:
    """Requests in flight over the real-time streams all workers together can feed (0 when none is up)."""
    capacity = sum(v for (name, _), v in snapshot.values.items() if name == "tts_worker_capacity")
    return in_flight / capacity if capacity > 0 else 0.0


def add_routes(
    app: FastAPI,
    *,
    context: RequestContext,
    shared: Shared,
    workers: Callable[[], Mapping[str, str]],
    engine: str = "auto",
) -> None:
    """Register the extra routes on the LitServe FastAPI app (served by every API-server process).

    `workers` gives LitServe's worker table (name -> starting/ready/error), read at request time; `engine`
    is the engine setting, shown by /health and /info (an `emulated:` one is a load test, not speech).
    """
    catalogue = context.catalogue
    ipc = LoopIpc()

    @app.get("/health")
    async def health() -> Response:
        """200 while at least one worker is ready and the server is not draining; else 503, saying why."""
        try:
            table = await ipc.call(lambda: dict(workers()))
            draining = await ipc.call(shared.board.draining)
        except IpcError as exc:  # the shared state is slow or gone: the server stops soon (watchdog.py)
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        states = {name.rsplit("_", 1)[-1]: str(state) for name, state in table.items()}
        ready = [w for w, state in states.items() if state == _READY]
        if draining:
            status = "draining"
        elif not ready:
            status = "unavailable"
        else:
            status = "ready" if len(ready) == len(states) else "degraded"
        body = {
            "status": status,
            "workers": states,
            "not_ready": sorted(w for w in states if w not in ready),
            "engine": engine,
            "emulated": engine.startswith(EMULATED_PREFIX),
        }
        return JSONResponse(body, status_code=200 if status in ("ready", "degraded") else 503)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "model": "Kokoro-82M",
            "version": __version__,
            "voices": len(catalogue),
            "languages": sorted(context.languages),
            "max_input_chars": context.max_input_chars,
            "engine": engine,
        }

    @app.get("/v1/audio/voices")
    async def voices() -> dict[str, Any]:
        return {
            "voices": [
                {
                    "id": v.id,
                    "name": v.id,
                    "language": v.language,
                    "lang_code": v.lang_code,
                    "gender": v.gender,
                    "available": v.lang_code in context.languages,
                }
                for v in catalogue.voices.values()
            ],
            "aliases": dict(OPENAI_VOICES),
            "languages": dict(LANGUAGES),
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model(m) for m in MODEL_IDS]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id not in MODEL_IDS:
            raise NotFound(f"model {model_id!r} not found; see GET /v1/models", param="model")
        return _model(model_id)

    @app.get("/metrics")
    async def metrics() -> Response:
        try:
            snapshot = await ipc.call(shared.counters.snapshot)
            in_flight = await ipc.call(shared.board.size)
            calls = await ipc.call(shared.board.calls)
        except IpcError as exc:
            return JSONResponse({"error": {"message": str(exc), "type": "server_error"}}, status_code=503)
        gauges: dict[Series, float] = {
            ("tts_cancel_board_entries", ()): float(in_flight),
            ("tts_load", ()): server_load(snapshot, in_flight),
            **{("tts_board_calls_total", (("call", call),)): float(n) for call, n in calls.items()},
        }
        return Response(render(snapshot, gauges), media_type=CONTENT_TYPE_LATEST)
