"""The speech route's front door, in every API-server process: authenticate, validate, admit, relay, watch.

A pure ASGI middleware around the LitServe app. For `POST /v1/audio/speech` it
- checks the API key of every `/v1/` and `/info` request when one is configured (401 otherwise;
  `/health` and `/metrics` stay open for probes and scrapers);
- validates the body with the same schema the workers use, answering 4xx OpenAI-shaped JSON
  before anything is queued (LitServe would answer 200 with an empty body);
- admits the request onto the stream board, or answers 503 with Retry-After when the server
  already holds `max_pending` requests or is shutting down;
- gives the request a ticket (request id + private key) that travels to the worker in the body;
- hands what the worker streams back to a relay (relay.py) that answers in the requested shape, and
  tells the board how much audio the client has taken (the worker stays at most `max_lead_s` ahead);
- marks the request cancelled on the board when the client goes away before the end, or reads
  nothing for `idle_timeout_s`, so the worker stops before its next chunk;
- watches the worker that took the request: if that process dies, the client sees a failure
  within seconds (a 503, an SSE error event, or an aborted transfer), never a hang.
Every HTTP response of the app gets an `X-Request-Id`. Shared-state round trips never run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputTooLong, Overloaded, TTSError, Unauthorized, WorkerLost
from ..ipc.frames import TICKET_KEY, Ticket
from ..ipc.manager import Shared
from ..ipc.streams import CancelReason
from ..schemas import RequestContext, SpeechRequest, parse_speech_request
from .ipc import IpcTimeout, LoopIpc
from .relay import ClientStalled, Relay, error_response, relay_for

__all__ = ["SpeechGateway"]

logger = logging.getLogger(__name__)

# JSON may escape one character into up to 6 bytes (\uXXXX), plus room for the other fields.
_BODY_BYTES_PER_CHAR = 6
_BODY_SLACK_BYTES = 64 * 1024
RETRY_AFTER_S = 2
_INLINE_PARSE_BYTES = 16 * 1024
WATCH_EVERY_S = 0.5  # how often a request in flight checks that its worker process is alive


class _ClientGone(Exception):
    """Raised when the client disconnects before its request body arrived."""


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


def _protected(path: str) -> bool:
    """Routes that need the API key when one is set: the API and what describes the deployment.

    `/health` and `/metrics` stay open for probes and scrapers; they reveal counts, not content.
    """
    return path.startswith("/v1/") or path == "/info"


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
        idle_timeout_s: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.context = context
        self.shared = shared
        self.ipc = LoopIpc()
        self.path = path
        self.max_pending = max_pending
        self.idle_timeout_s = idle_timeout_s
        self.max_body_bytes = context.max_input_chars * _BODY_BYTES_PER_CHAR + _BODY_SLACK_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = Ticket.issue(_header(scope, b"x-request-id"))
        send = _tag_with_request_id(send, ticket.request_id)
        if self.api_key is not None and _protected(scope["path"]) and not self._authorized(scope):
            await error_response(
                send, Unauthorized("missing or incorrect API key; send Authorization: Bearer <key>")
            )
            return
        if scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        received_at = time.monotonic()
        try:
            speech = await self._admit(receive, ticket)
        except _ClientGone:
            return
        except TTSError as exc:
            self.ipc.post(self.shared.counters.add, "tts_requests_rejected_total", status=exc.status)
            await error_response(send, exc)
            return
        relay = relay_for(
            speech,
            ticket,
            send,
            received_at,
            delivered=lambda audio_s: self.ipc.post(self.shared.board.delivered, ticket.key, audio_s),
            idle_timeout_s=self.idle_timeout_s,
        )
        try:
            await self._forward(scope, receive, speech, ticket, relay)
        finally:
            self._finish(relay, ticket)

    async def _admit(self, receive: Receive, ticket: Ticket) -> SpeechRequest:
        """Read and validate the body, then take a place on the board; TTSError says why not."""
        body = await _read_body(receive, self.max_body_bytes)
        if len(body) > _INLINE_PARSE_BYTES:  # planning a long text takes milliseconds: not on the loop
            planned = await asyncio.to_thread(parse_speech_request, body, self.context)
        else:
            planned = parse_speech_request(body, self.context)
        try:
            admitted = await self.ipc.call(self.shared.board.open, ticket.key, self.max_pending)
        except IpcTimeout as exc:
            logger.error("request %s refused: %s", ticket.request_id, exc)
            raise Overloaded(
                "the server cannot admit requests right now; retry shortly", retry_after_s=RETRY_AFTER_S
            ) from None
        if admitted == "draining":
            raise Overloaded(
                "the server is shutting down; retry on another replica", retry_after_s=RETRY_AFTER_S
            )
        if admitted != "admitted":
            raise Overloaded(
                f"the server is busy with {self.max_pending} requests; retry shortly",
                retry_after_s=RETRY_AFTER_S,
            )
        return planned.request  # the plan was for validation; the worker makes its own

    def _finish(self, relay: Relay, ticket: Ticket) -> None:
        if not relay.finished:
            self._abandon(relay, ticket, "client")
        counters = self.shared.counters
        if relay.delivery_s:
            self.ipc.post(counters.observe, "tts_delivery_seconds", relay.delivery_s)
        if relay.first_audio_s is not None:
            self.ipc.post(counters.observe, "tts_time_to_first_audio_seconds", [relay.first_audio_s])
        if relay.refused_by_litserve:
            self.ipc.post(self.shared.board.close, ticket.key)  # never queued, so no worker will close it

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), str(self.api_key).encode()
        )

    async def _forward(
        self, scope: Scope, receive: Receive, speech: SpeechRequest, ticket: Ticket, relay: Relay
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
                self._abandon(relay, ticket, "client")
            return message

        inner = asyncio.ensure_future(self.app({**scope, "headers": headers}, replay, relay))
        try:
            await self._watch(inner, relay, ticket)
        except ClientStalled as exc:
            logger.warning("%s; cutting it off", exc)
            self._abandon(relay, ticket, "idle")
        finally:
            if not inner.done():
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClientStalled):
                    await inner

    async def _watch(self, inner: asyncio.Future[None], relay: Relay, ticket: Ticket) -> None:
        """Wait for LitServe's handler; fail the request visibly if its worker process dies meanwhile."""
        while True:
            done, _ = await asyncio.wait({inner}, timeout=WATCH_EVERY_S)
            if done:
                inner.result()
                return
            if relay.worker is not None and not relay.finished and not relay.worker.alive():
                logger.error("request %s: worker process %d died", ticket.request_id, relay.worker.pid)
                await relay.fail(
                    WorkerLost(
                        f"the worker synthesizing this request stopped unexpectedly "
                        f"(request id {ticket.request_id}); a replacement is starting, retry shortly",
                        retry_after_s=RETRY_AFTER_S,
                    )
                )
                self.ipc.post(self.shared.board.close, ticket.key)  # no worker will close it now
                return

    def _abandon(self, relay: Relay, ticket: Ticket, reason: CancelReason) -> None:
        """The client left before the end: tell the worker to stop before its next chunk."""
        if relay.abandoned:
            return
        relay.abandoned = True
        relay.finished = True
        self.ipc.post(self._cancel, ticket, reason, relay.audio_bytes_sent / relay.bytes_per_second)

    def _cancel(self, ticket: Ticket, reason: CancelReason, audio_s: float) -> None:
        if self.shared.board.cancel(ticket.key, reason):
            why = "went away" if reason == "client" else "stopped reading"
            logger.info(
                "request %s: client %s after %.2f s of audio; cancelling synthesis",
                ticket.request_id,
                why,
                audio_s,
            )
