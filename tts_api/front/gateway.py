"""The speech route's gateway, in every API-server process: admit, forward to LitServe, relay, watch.

It also opens the voice-agent sockets' live streams (`open_live`, front/live.py), forwarded the same way,
and hands their WebSocket connections to the socket routes (front/sockets/).

A pure ASGI middleware around the LitServe app (inside RequestIds and ApiKeyAuth, auth.py). For
`POST /v1/audio/speech` it
- admits the request (admission.py: validated body and a Lease on the stream board, or a 4xx/503);
- passes the request's ticket (request id + private key) to the worker inside the body;
- hands what the worker streams back to a relay (relay.py) that answers in the requested shape, and
  tells the lease how much audio the client has taken (the worker stays at most `max_lead_s` ahead);
- cancels the lease when the client goes away before the end (its own watch over `receive`, whatever
  the framework inside listens for), reads nothing for the idle timeout, or reads slower than the floor
  while the server waits on it (readrate.py), so the worker stops before its next chunk;
- watches the worker that took the request: if that process dies, the lease is closed and the client
  sees a failure within seconds (a 503, an SSE error event, or an aborted transfer), never a hang;
- answers 503 + Retry-After to a request that has no audio `max_wait_s` after it came (queued behind
  others, or waiting for room on a worker), and cancels it; one the board expects to wait longer than
  that is refused at admission.
Shared-state round trips never run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Overloaded, TTSError, WorkerLost
from ..ipc.frames import TICKET_KEY, Ticket
from ..ipc.manager import Shared
from ..schemas import RequestContext, SpeechRequest
from .admission import Admission, ClientGone
from .auth import ticket_of
from .ipc import LoopIpc
from .lease import RETRY_AFTER_S, Lease
from .live import LiveStream
from .readrate import ReaderLimits
from .relay import ClientStalled, Relay, error_response, relay_for

__all__ = ["Sockets", "SpeechGateway"]

logger = logging.getLogger(__name__)

WATCH_EVERY_S = 0.5  # how often a request in flight checks that its worker process is alive


class Sockets(Protocol):
    """The voice-agent WebSocket routes (front/sockets/): which paths they serve, and serving one."""

    def serves(self, scope: Scope) -> bool: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send, gateway: SpeechGateway) -> None: ...


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
        max_wait_s: float = 0.0,
        limits: ReaderLimits | None = None,
        sockets: Sockets | None = None,
    ) -> None:
        self.app = app
        self.shared = shared
        self.ipc = LoopIpc()
        self.admission = Admission(context, shared.board, self.ipc, max_pending, max_wait_s)
        self.path = path
        self.limits = limits or ReaderLimits()
        self.sockets = sockets

    async def open_live(self, scope: Scope, speech: SpeechRequest, ticket: Ticket) -> LiveStream:
        """Admit a live stream (a voice agent's context) and start it; TTSError (503) if there is no room.

        `scope` is the socket's: the stream is forwarded to LitServe as a POST of the speech route."""
        lease = await Lease.take(self.shared.board, self.ipc, ticket, self.admission.max_pending)
        upgrade = (b"upgrade", b"connection")
        headers = [
            (k, v)
            for k, v in scope.get("headers", [])
            if not k.startswith(b"sec-websocket") and k not in upgrade
        ]
        post = {
            **scope,
            "type": "http",
            "method": "POST",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "scheme": "http",
            "headers": headers,
        }
        try:
            return LiveStream(self._forward, post, speech, lease, self.ipc, self.limits, self._encoders)
        except BaseException:
            lease.close()  # never forwarded: no worker will close its place
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.sockets is not None and self.sockets.serves(scope):
            await self.sockets(scope, receive, send, self)
            return
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        ticket = ticket_of(scope)
        received_at = time.monotonic()
        try:
            speech, lease = await self.admission.admit(receive, ticket)
        except ClientGone:
            return
        except TTSError as exc:
            self.ipc.post(self.shared.counters.add, "tts_requests_rejected_total", status=exc.status)
            await error_response(send, exc)
            return
        try:
            relay = relay_for(
                speech, ticket, send, received_at, lease=lease, limits=self.limits, encoders=self._encoders
            )
        except Exception:
            logger.exception("request %s: could not open its encoder", ticket.request_id)
            lease.close()  # never forwarded: no worker will close its place
            await error_response(
                send, TTSError(f"could not start the audio (request id {ticket.request_id})")
            )
            return
        disconnect = asyncio.ensure_future(_until_disconnect(receive, lease))
        try:
            await self._forward(scope, disconnect, speech, lease, relay)
        finally:
            disconnect.cancel()
            lease.cancel("client")  # whatever the request left open, its client has gone
            relay.release()
            self._observe(relay)

    def _encoders(self, opened: int) -> None:
        """A request's encoder opened (+1) or closed (-1) in this process; called from any thread."""
        self.ipc.post(self.shared.counters.add, "tts_open_encoders", opened, process=os.getpid())

    def _observe(self, relay: Relay) -> None:
        counters = self.shared.counters
        if relay.delivery_s:
            self.ipc.post(counters.observe, "tts_delivery_seconds", relay.delivery_s)
        if relay.first_audio_s is not None:
            self.ipc.post(counters.observe, "tts_time_to_first_audio_seconds", [relay.first_audio_s])

    async def _forward(
        self,
        scope: Scope,
        disconnect: asyncio.Future[Message],
        speech: SpeechRequest,
        lease: Lease,
        relay: Relay,
    ) -> None:
        payload = {**speech.model_dump(mode="json"), TICKET_KEY: lease.ticket.to_dict()}
        body = json.dumps(payload).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # Starlette's StreamingResponse may listen here too (under ASGI spec < 2.4); it shares our watch,
            # and cancelling its listener when the response ends must not end the watch.
            return await asyncio.shield(disconnect)

        inner = asyncio.ensure_future(self.app({**scope, "headers": headers}, replay, relay))
        try:
            await self._watch(inner, lease, relay)
        except ClientStalled as exc:
            logger.warning("%s; cutting it off", exc)
            lease.cancel(exc.reason)
        finally:
            if not inner.done():
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClientStalled):
                    await inner

    async def _watch(self, inner: asyncio.Future[None], lease: Lease, relay: Relay) -> None:
        """Wait for LitServe's handler; fail the request visibly if its worker process dies meanwhile."""
        while True:
            done, _ = await asyncio.wait({inner}, timeout=WATCH_EVERY_S)
            if done:
                inner.result()
                return
            if self._waited_too_long(lease, relay):
                lease.cancel("queued")
                self.ipc.post(
                    self.shared.counters.add, "tts_requests_rejected_total", status=Overloaded.status
                )
                await relay.fail(
                    Overloaded(
                        f"request {lease.ticket.request_id} had no audio after "
                        f"{self.admission.max_wait_s:g} s (the server is busy); retry later or on another "
                        "replica",
                        retry_after_s=RETRY_AFTER_S,
                    )
                )
                return
            if not lease.settled and relay.rate.too_slow():
                rate = relay.rate
                raise ClientStalled(
                    f"request {lease.ticket.request_id}: the client took audio slower than "
                    f"{rate.min_rate:g} s per s for {rate.window_s:g} s while the server waited on it",
                    reason="slow",
                )
            worker = lease.worker
            if worker is not None and not lease.settled and not worker.alive():
                logger.error("request %s: worker process %d died", lease.ticket.request_id, worker.pid)
                lease.close()  # no worker will close it now; first, since the client may not take the error
                await relay.fail(
                    WorkerLost(
                        f"the worker synthesizing this request stopped unexpectedly "
                        f"(request id {lease.ticket.request_id}); a replacement is starting, retry shortly",
                        retry_after_s=RETRY_AFTER_S,
                    )
                )
                return

    def _waited_too_long(self, lease: Lease, relay: Relay) -> bool:
        max_wait_s = self.admission.max_wait_s
        return (
            max_wait_s > 0
            and not relay.progressed
            and not lease.settled
            and time.monotonic() - relay.received_at > max_wait_s
        )


async def _until_disconnect(receive: Receive, lease: Lease) -> Message:
    """Read the client's side of the connection (its body was read already) until it disconnects, then
    cancel the lease: the worker stops before its next chunk, or never starts a queued request. Our own
    watch: Starlette's StreamingResponse listens for the disconnect only under ASGI spec < 2.4, and a
    request that is queued or building a whole file sends nothing that could fail instead."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            lease.cancel("client")
            return message
