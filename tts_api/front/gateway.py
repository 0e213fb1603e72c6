"""The speech route's gateway, in every API-server process: admit, forward to LitServe, relay, watch.

A pure ASGI middleware around the LitServe app (inside RequestIds and ApiKeyAuth, auth.py). For
`POST /v1/audio/speech` it
- admits the request (admission.py: validated body, a place on the stream board, or a 4xx/503);
- passes the request's ticket (request id + private key) to the worker inside the body;
- hands what the worker streams back to a relay (relay.py) that answers in the requested shape, and
  tells the board how much audio the client has taken (the worker stays at most `max_lead_s` ahead);
- marks the request cancelled on the board when the client goes away before the end, or reads
  nothing for `idle_timeout_s`, so the worker stops before its next chunk;
- watches the worker that took the request: if that process dies, the client sees a failure
  within seconds (a 503, an SSE error event, or an aborted transfer), never a hang.
Shared-state round trips never run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import TTSError, WorkerLost
from ..ipc.frames import TICKET_KEY, Ticket
from ..ipc.manager import Shared
from ..ipc.streams import CancelReason
from ..schemas import RequestContext, SpeechRequest
from .admission import RETRY_AFTER_S, Admission, ClientGone
from .auth import ticket_of
from .ipc import LoopIpc
from .relay import ClientStalled, Relay, error_response, relay_for

__all__ = ["SpeechGateway"]

logger = logging.getLogger(__name__)

WATCH_EVERY_S = 0.5  # how often a request in flight checks that its worker process is alive


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
    ) -> None:
        self.app = app
        self.shared = shared
        self.ipc = LoopIpc()
        self.admission = Admission(context, shared.board, self.ipc, max_pending)
        self.path = path
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        ticket = ticket_of(scope)
        received_at = time.monotonic()
        try:
            speech = await self.admission.admit(receive, ticket)
        except ClientGone:
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
