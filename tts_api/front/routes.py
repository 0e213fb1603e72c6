"""Routes beside the speech endpoint: the voice list, the model list, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import NotFound
from ..ipc.counters import Series
from ..ipc.manager import Shared
from ..schemas import MODEL_IDS, RequestContext
from ..voices import LANGUAGES, OPENAI_VOICES
from .metrics import render

__all__ = ["add_routes"]

# A fixed creation time (Kokoro-82M v1.0's release, 2025-01-27) keeps the listing stable.
MODEL_CREATED = 1737936000


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "tts-api"}


def add_routes(app: FastAPI, *, context: RequestContext, shared: Shared) -> None:
    """Register the extra routes on the LitServe FastAPI app (served by every API-server process)."""
    catalogue = context.catalogue

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

    # A plain def: FastAPI runs it in its thread pool, keeping the manager round trips off the event loop.
    @app.get("/metrics")
    def metrics() -> Response:
        gauges: dict[Series, float] = {("tts_cancel_board_entries", ()): float(shared.board.size())}
        return Response(render(shared.counters.snapshot(), gauges), media_type=CONTENT_TYPE_LATEST)
