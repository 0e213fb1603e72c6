"""The speech route's front door, in every API-server process: validate, tag, relay, frame.

A pure ASGI middleware around the LitServe app. For `POST /v1/audio/speech` it
- validates the body with the same schema the workers use, answering 4xx OpenAI-shaped JSON
  before anything is queued (LitServe would answer 200 with an empty body);
- gives the request a ticket (request id + private key) that travels to the worker in the body;
- turns the worker's stream into the response the client asked for: raw audio bytes, SSE events,
  or one complete file with Content-Length, each with the right Content-Type;
- makes a failure visible: a JSON error if nothing was sent yet, an SSE error event, or an aborted
  connection (never a clean end of a short file);
- reports a client that went away, so the worker can stop (see `on_abandon`).
Every HTTP response of the app gets an `X-Request-Id`.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audio import MEDIA_TYPES
from .errors import InputTooLong, InvalidRequest, TTSError
from .frames import TICKET_KEY, Ticket
from .schemas import RequestContext, SpeechRequest, parse_speech_request

__all__ = ["SpeechGateway", "error_response"]

logger = logging.getLogger(__name__)

AbandonHook = Callable[[Ticket], None]

# JSON may escape one character into up to 6 bytes (\uXXXX), plus room for the other fields.
_BODY_BYTES_PER_CHAR = 6
_BODY_SLACK_BYTES = 64 * 1024


class _ClientGone(Exception):
    """Raised when the client disconnects before its request body arrived."""


async def error_response(send: Send, error: TTSError, request_id: str | None = None) -> None:
    """Send `error` as a complete OpenAI-shaped JSON response."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InputTooLong(f"request body is larger than {limit} bytes", param="input")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class SpeechGateway:
    """ASGI middleware: see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        context: RequestContext,
        path: str,
        on_abandon: AbandonHook | None = None,
    ) -> None:
        self.app = app
        self.context = context
        self.path = path
        self.on_abandon = on_abandon
        self.max_body_bytes = context.max_input_chars * _BODY_BYTES_PER_CHAR + _BODY_SLACK_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = Ticket.issue(_header(scope, b"x-request-id"))
        send = _tag_with_request_id(send, ticket.request_id)
        if scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            speech = parse_speech_request(await _read_body(receive, self.max_body_bytes), self.context)
        except _ClientGone:
            return
        except TTSError as exc:
            await error_response(send, exc)
            return
        await self._relay(scope, receive, send, speech, ticket)

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, speech: SpeechRequest, ticket: Ticket
    ) -> None:
        payload = {**speech.model_dump(mode="json"), TICKET_KEY: ticket.to_dict()}
        body = json.dumps(payload).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        relay = _relay_for(speech, ticket, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message = await receive()  # LitServe's StreamingResponse listens here for the disconnect
            if message["type"] == "http.disconnect":
                self._abandoned(relay, ticket)
            return message

        try:
            await self.app({**scope, "headers": headers}, replay, relay)
        finally:
            self._abandoned(relay, ticket)

    def _abandoned(self, relay: _Relay, ticket: Ticket) -> None:
        """Tell the worker to stop if the response did not reach its end (client gone, app cancelled)."""
        if not relay.finished and not relay.abandoned:
            relay.abandoned = True
            logger.info("request %s: client went away before the audio ended", ticket.request_id)
            if self.on_abandon is not None:
                self.on_abandon(ticket)


def _tag_with_request_id(send: Send, request_id: str) -> Send:
    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(k.lower() == b"x-request-id" for k, _ in headers):
                headers.append((b"x-request-id", request_id.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return tagged


class _Relay:
    """Receives what LitServe sends for one request and answers the client in the requested shape.

    Subclasses decide what audio, the end and an error look like on the wire.
    """

    def __init__(self, speech: SpeechRequest, ticket: Ticket, send: Send) -> None:
        self.speech = speech
        self.ticket = ticket
        self.send = send
        self.started = False  # the client's response has begun
        self.finished = False  # the client's response is complete (or was deliberately cut)
        self.abandoned = False
        self._inner_status = 200
        self._inner_body: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if self.finished:
            return
        if message["type"] == "http.response.start":
            self._inner_status = message["status"]  # held back: our headers go out with the first audio
            return
        chunk, more = message.get("body", b""), message.get("more_body", False)
        if self._inner_status != 200:
            await self._relay_inner_error(chunk, more)
            return
        if chunk:
            frame = self.ticket.control(chunk)
            if frame is None:
                await self.on_audio(chunk)
            elif frame.is_end:
                await self.on_end(frame.data)
                self.finished = True
            else:
                await self.fail(frame.error())
        if not more and not self.finished:
            # LitServe ended the stream without our end frame: the worker crashed or timed out.
            await self.fail(
                TTSError(f"speech synthesis stopped unexpectedly (request id {self.ticket.request_id})")
            )

    async def _relay_inner_error(self, chunk: bytes, more: bool) -> None:
        """LitServe itself refused the request (auth, its own 500): pass it on in the OpenAI shape."""
        self._inner_body.append(chunk)
        if more:
            return
        try:
            detail = json.loads(b"".join(self._inner_body)).get("detail")
        except (json.JSONDecodeError, AttributeError):
            detail = None
        error = TTSError(str(detail or "request failed"), status=self._inner_status)
        if self._inner_status < 500:
            error.type = InvalidRequest.type
        await error_response(self.send, error)
        self.finished = True

    async def start(self, media_type: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers + (extra or [])})
        self.started = True

    async def body(self, data: bytes, *, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def fail(self, error: TTSError) -> None:
        logger.error("request %s failed: %s", self.ticket.request_id, error.message)
        if not self.started:
            await error_response(self.send, error)
        else:
            await self.on_error_after_start(error)
        self.finished = True

    async def on_audio(self, data: bytes) -> None:
        raise NotImplementedError

    async def on_end(self, stats: dict[str, Any]) -> None:
        raise NotImplementedError

    async def on_error_after_start(self, error: TTSError) -> None:
        """Cut the transfer: returning without the final chunk makes the server close the connection,
        so the client sees a broken transfer instead of a clean, silently short file."""


class _AudioStream(_Relay):
    """Chunked audio bytes as the encoder produces them."""

    async def on_audio(self, data: bytes) -> None:
        if not self.started:
            # X-Accel-Buffering: tell nginx-style proxies not to hold back the stream.
            await self.start(MEDIA_TYPES[self.speech.response_format], [(b"x-accel-buffering", b"no")])
        await self.body(data)

    async def on_end(self, stats: dict[str, Any]) -> None:
        if not self.started:
            await self.start(MEDIA_TYPES[self.speech.response_format])
        await self.body(b"", more=False)


class _EventStream(_Relay):
    """Server-sent events: base64 audio deltas, then `speech.audio.done` (or an error event)."""

    async def _event(self, event: dict[str, Any], *, more: bool = True) -> None:
        if not self.started:
            await self.start("text/event-stream", [(b"x-accel-buffering", b"no")])
        await self.body(f"data: {json.dumps(event)}\n\n".encode(), more=more)

    async def on_audio(self, data: bytes) -> None:
        await self._event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})

    async def on_end(self, stats: dict[str, Any]) -> None:
        usage = {
            "input_tokens": len(self.speech.input),
            "output_tokens": 0,
            "total_tokens": len(self.speech.input),
        }
        await self._event({"type": "speech.audio.done", "usage": usage}, more=False)

    async def on_error_after_start(self, error: TTSError) -> None:
        await self._event({"type": "error", **error.body()}, more=False)


class _WholeFile(_Relay):
    """`stream: false`: the complete file in one response with Content-Length."""

    def __init__(self, speech: SpeechRequest, ticket: Ticket, send: Send) -> None:
        super().__init__(speech, ticket, send)
        self._parts: list[bytes] = []

    async def on_audio(self, data: bytes) -> None:
        self._parts.append(data)

    async def on_end(self, stats: dict[str, Any]) -> None:
        data = b"".join(self._parts)
        self._parts.clear()
        await self.start(
            MEDIA_TYPES[self.speech.response_format], [(b"content-length", str(len(data)).encode())]
        )
        await self.body(data, more=False)


def _relay_for(speech: SpeechRequest, ticket: Ticket, send: Send) -> _Relay:
    if not speech.stream:
        return _WholeFile(speech, ticket, send)
    if speech.stream_format == "sse":
        return _EventStream(speech, ticket, send)
    return _AudioStream(speech, ticket, send)
