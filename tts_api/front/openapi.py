"""The OpenAPI description of the speech route: the body the gateway validates and the errors it answers.

FastAPI only sees LitServe's handler, which takes a raw request; the gateway in front of it reads the real
body (`SpeechRequest`). So the generated schema is patched to say what a client may send and receive,
which is also what the fuzz test (schemathesis) generates requests from.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .. import __version__
from ..formats import MEDIA_TYPES
from ..schemas import SpeechRequest

__all__ = ["describe_api"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ERRORS = {
    "400": "Invalid request: a field's value, the JSON, a pause tag, no speakable text",
    "401": "Missing or wrong API key (when the server requires one)",
    "413": "Input longer than the server accepts",
    "500": "Synthesis failed (after the response started: SSE `error` event or an aborted transfer)",
    "503": "Busy, shutting down, or the worker was lost; see Retry-After",
}


def _speech_operation() -> dict[str, Any]:
    audio = {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()}
    events = {
        media: {"schema": {"type": "string"}} for media in ("text/event-stream", "application/x-ndjson")
    }
    responses: dict[str, Any] = {
        "200": {
            "description": "Audio in the requested format, streamed as it is made (or one file with "
            "Content-Length when stream is false); SSE or NDJSON events with stream_format",
            "content": {**audio, **events},
        }
    }
    for status, description in _ERRORS.items():
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return {
        "summary": "Create speech (OpenAI-compatible)",
        "operationId": "create_speech",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SpeechRequest"}}},
        },
        "responses": responses,
    }


def describe_api(app: FastAPI, speech_path: str) -> None:
    """Make `app.openapi()` describe the speech route's real body and responses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title="tts-api",
            version=__version__,
            description="OpenAI-compatible streaming text-to-speech for Kokoro-82M",
            routes=app.routes,
        )
        request = SpeechRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(request.pop("$defs", {}))
        components["SpeechRequest"] = request
        components["Error"] = _ERROR
        schema["paths"][speech_path] = {"post": _speech_operation()}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
