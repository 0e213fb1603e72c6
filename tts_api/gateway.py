"""The speech route's front door, in every API-server process: validate, admit, relay, watch.

A pure ASGI middleware around the LitServe app. For `POST /v1/audio/speech` it
- checks the API key of every `/v1/` request when one is configured (401 otherwise);
- validates the body with the same schema the workers use, answering 4xx OpenAI-shaped JSON
  before anything is queued (LitServe would answer 200 with an empty body);
- admits the request onto the cancel board, or answers 503 with Retry-After when the server
  already holds `max_pending` requests;
- gives the request a ticket (request id + private key) that travels to the worker in the body;
- turns the worker's frames into the response the client asked for: raw audio bytes, SSE or NDJSON
  events (audio deltas, word timestamps, done), or one complete file with Content-Length, each with
  the right Content-Type;
- makes a failure visible: a JSON error if nothing was sent yet, an SSE error event, or an aborted
  connection (never a clean end of a short file);
- marks the request cancelled on the board when the client goes away before the end, for streamed
  and whole-file responses alike, so the worker stops before its next chunk.
Every HTTP response of the app gets an `X-Request-Id`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audio import MEDIA_TYPES
from .errors import InputTooLong, InvalidRequest, Overloaded, TTSError, Unauthorized
from .frames import TICKET_KEY, Frame, FrameError, Ticket
from .schemas import RequestContext, SpeechRequest, parse_speech_request
from .shared import Shared

__all__ = ["SpeechGateway", "error_response"]

logger = logging.getLogger(__name__)

# JSON may escape one character into up to 6 bytes (\uXXXX), plus room for the other fields.
_BODY_BYTES_PER_CHAR = 6
_BODY_SLACK_BYTES = 64 * 1024
RETRY_AFTER_S = 2
_INLINE_PARSE_BYTES = 16 * 1024


class _ClientGone(Exception):
    """Raised when the client disconnects before its request body arrived."""


async def error_response(send: Send, error: TTSError) -> None:
    """Send `error` as a complete OpenAI-shaped JSON response."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
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


def _tag_with_request_id(send: Send, request_id: str) -> Send:
    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(k.lower() == b"x-request-id" for k, _ in headers):
                headers.append((b"x-request-id", request_id.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return tagged


class SpeechGateway:
    """ASGI middleware: see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        context: RequestContext,
        shared: Shared,
        path: str,
        max_pending: int,
        api_key: str | None = None,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.context = context
        self.shared = shared
        self.path = path
        self.max_pending = max_pending
        self.max_body_bytes = context.max_input_chars * _BODY_BYTES_PER_CHAR + _BODY_SLACK_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = Ticket.issue(_header(scope, b"x-request-id"))
        send = _tag_with_request_id(send, ticket.request_id)
        if self.api_key is not None and scope["path"].startswith("/v1/") and not self._authorized(scope):
            await error_response(
                send, Unauthorized("missing or incorrect API key; send Authorization: Bearer <key>")
            )
            return
        if scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        received_at = time.monotonic()
        try:
            body = await _read_body(receive, self.max_body_bytes)
            if len(body) > _INLINE_PARSE_BYTES:  # planning a long text takes milliseconds: not on the loop
                planned = await asyncio.to_thread(parse_speech_request, body, self.context)
            else:
                planned = parse_speech_request(body, self.context)
            speech = planned.request  # the plan was for validation; the worker makes its own
            if not self.shared.board.open(ticket.key, self.max_pending):
                raise Overloaded(
                    f"the server is busy with {self.max_pending} requests; retry shortly",
                    retry_after_s=RETRY_AFTER_S,
                )
        except _ClientGone:
            return
        except TTSError as exc:
            self.shared.counters.add(f'tts_requests_rejected_total{{status="{exc.status}"}}')
            await error_response(send, exc)
            return
        relay = _relay_for(speech, ticket, send, received_at)
        try:
            await self._forward(scope, receive, speech, ticket, relay)
        finally:
            if not relay.finished:
                self._abandon(relay, ticket)
            if relay.delivery_s:
                self.shared.counters.observe("tts_delivery_seconds", relay.delivery_s)
            if relay.first_audio_s is not None:
                self.shared.counters.observe("tts_time_to_first_audio_seconds", [relay.first_audio_s])
            if relay.refused_by_litserve:
                self.shared.board.close(ticket.key)  # never queued, so no worker will close it

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), str(self.api_key).encode()
        )

    async def _forward(
        self, scope: Scope, receive: Receive, speech: SpeechRequest, ticket: Ticket, relay: _Relay
    ) -> None:
        payload = {**speech.model_dump(mode="json"), TICKET_KEY: ticket.to_dict()}
        body = json.dumps(payload).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message = await receive()  # LitServe's StreamingResponse listens here for the disconnect
            if message["type"] == "http.disconnect" and not relay.finished:
                self._abandon(relay, ticket)
            return message

        await self.app({**scope, "headers": headers}, replay, relay)

    def _abandon(self, relay: _Relay, ticket: Ticket) -> None:
        """The client left before the end: tell the worker to stop before its next chunk."""
        if relay.abandoned:
            return
        relay.abandoned = True
        relay.finished = True
        if self.shared.board.cancel(ticket.key):
            logger.info(
                "request %s: client went away after %.2f s of audio; cancelling synthesis",
                ticket.request_id,
                relay.audio_bytes_sent / relay.bytes_per_second,
            )


class _Relay:
    """Receives what LitServe sends for one request and answers the client in the requested shape.

    Subclasses decide what audio, the end and an error look like on the wire.
    """

    def __init__(self, speech: SpeechRequest, ticket: Ticket, send: Send, received_at: float) -> None:
        self.speech = speech
        self.ticket = ticket
        self.send = send
        self.received_at = received_at
        self.started = False  # the client's response has begun
        self.finished = False  # nothing more goes to the client
        self.abandoned = False
        self.refused_by_litserve = False
        self.first_audio_s: float | None = None
        self.delivery_s: list[float] = []
        self.audio_bytes_sent = 0
        self._inner_status = 200
        self._inner_body: list[bytes] = []

    @property
    def bytes_per_second(self) -> float:
        """Rough encoded bytes per audio second, for log lines (exact for pcm)."""
        return 48_000.0 if self.speech.response_format in ("pcm", "wav") else 8_000.0

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
            await self._on_item(chunk)
        if not more and not self.finished:
            # LitServe ended the stream without our end frame: the worker crashed or timed out.
            await self.fail(
                TTSError(f"speech synthesis stopped unexpectedly (request id {self.ticket.request_id})")
            )

    async def _on_item(self, item: bytes) -> None:
        try:
            frame = self.ticket.parse(item)
        except FrameError as exc:
            await self.fail(TTSError(str(exc)))
            return
        if frame.kind == "audio":
            self.delivery_s.append(max(0.0, time.time() - frame.sent_at))
            if self.first_audio_s is None:
                self.first_audio_s = time.monotonic() - self.received_at
            self.audio_bytes_sent += len(frame.payload)
            await self.on_audio(frame.payload)
        elif frame.kind == "words":
            await self.on_words(frame.data())
        elif frame.kind == "end":
            await self.on_end(frame)
            self.finished = True
        else:
            await self.fail(frame.error())

    async def _relay_inner_error(self, chunk: bytes, more: bool) -> None:
        """LitServe itself refused the request (auth, its own 500): pass it on in the OpenAI shape."""
        self.refused_by_litserve = True
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
        self.finished = True
        if not self.started:
            await error_response(self.send, error)
        else:
            await self.on_error_after_start(error)

    async def on_audio(self, data: bytes) -> None:
        raise NotImplementedError

    async def on_end(self, end: Frame) -> None:
        raise NotImplementedError

    async def on_words(self, words: list[dict[str, Any]]) -> None:
        """Word timestamps: only event streams carry them."""

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

    async def on_end(self, end: Frame) -> None:
        if not self.started:
            await self.start(MEDIA_TYPES[self.speech.response_format])
        await self.body(b"", more=False)


class _EventStream(_Relay):
    """Server-sent events: base64 audio deltas and word timestamps, then `speech.audio.done`.

    A failure after the first event becomes an `error` event. `ndjson` sends the same events as
    one JSON object per line.
    """

    async def _event(self, event: dict[str, Any], *, more: bool = True) -> None:
        ndjson = self.speech.stream_format == "ndjson"
        if not self.started:
            media_type = "application/x-ndjson" if ndjson else "text/event-stream"
            await self.start(media_type, [(b"x-accel-buffering", b"no")])
        line = json.dumps(event)
        await self.body(f"{line}\n".encode() if ndjson else f"data: {line}\n\n".encode(), more=more)

    async def on_audio(self, data: bytes) -> None:
        await self._event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})

    async def on_words(self, words: list[dict[str, Any]]) -> None:
        await self._event({"type": "speech.word_timestamps", "words": words})

    async def on_end(self, end: Frame) -> None:
        await self._event({"type": "speech.audio.done", "usage": end.data().get("usage", {})}, more=False)

    async def on_error_after_start(self, error: TTSError) -> None:
        await self._event({"type": "error", **error.body()}, more=False)


class _WholeFile(_Relay):
    """`stream: false`: the complete file in one response with Content-Length."""

    def __init__(self, speech: SpeechRequest, ticket: Ticket, send: Send, received_at: float) -> None:
        super().__init__(speech, ticket, send, received_at)
        self._parts: list[bytes] = []

    async def on_audio(self, data: bytes) -> None:
        self._parts.append(data)

    async def on_end(self, end: Frame) -> None:
        data = b"".join(self._parts)
        self._parts.clear()
        await self.start(
            MEDIA_TYPES[self.speech.response_format], [(b"content-length", str(len(data)).encode())]
        )
        await self.body(data, more=False)


def _relay_for(speech: SpeechRequest, ticket: Ticket, send: Send, received_at: float) -> _Relay:
    if not speech.stream:
        return _WholeFile(speech, ticket, send, received_at)
    if speech.stream_format in ("sse", "ndjson"):
        return _EventStream(speech, ticket, send, received_at)
    return _AudioStream(speech, ticket, send, received_at)
