"""Request ids and the API key: the two outermost middlewares of every HTTP process."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Unauthorized
from ..ipc.frames import Ticket
from .relay import error_response

__all__ = ["TICKET_SCOPE_KEY", "ApiKeyAuth", "RequestIds", "header", "ticket_of"]

TICKET_SCOPE_KEY = "tts_ticket"  # where RequestIds leaves the request's ticket in the ASGI scope


def header(scope: Scope, name: bytes) -> str | None:
    """One request header, decoded; None when absent."""
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def ticket_of(scope: Scope) -> Ticket:
    """The ticket RequestIds issued for this request (a fresh one if it did not run)."""
    ticket = scope.get(TICKET_SCOPE_KEY)
    return ticket if isinstance(ticket, Ticket) else Ticket.issue(header(scope, b"x-request-id"))


class RequestIds:
    """Give every HTTP request a ticket (the client's X-Request-Id when it is a sane one) and every
    response an `X-Request-Id` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = Ticket.issue(header(scope, b"x-request-id"))
        request_id = ticket.request_id.encode()

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id))
                message = {**message, "headers": headers}
            await send(message)

        await self.app({**scope, TICKET_SCOPE_KEY: ticket}, receive, tagged)


class ApiKeyAuth:
    """With a key configured, `/v1/*` and `/info` need `Authorization: Bearer <key>` (401 otherwise).

    `/health` and `/metrics` stay open for probes and scrapers; they reveal counts, not content. A
    WebSocket on `/v1/*` may send the key as its client does: `Authorization: Bearer` (Together),
    `xi-api-key` (ElevenLabs) or the `api_key` query parameter (Together); without it the upgrade is
    refused (HTTP 403) before anything is read.
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.api_key is None
            or scope["type"] not in ("http", "websocket")
            or not _protected(scope["path"])
        ):
            await self.app(scope, receive, send)
        elif scope["type"] == "http" and not self._authorized(scope):
            await error_response(
                send, Unauthorized("missing or incorrect API key; send Authorization: Bearer <key>")
            )
        elif scope["type"] == "websocket" and not self._authorized(scope, socket=True):
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or incorrect API key"})
        else:
            await self.app(scope, receive, send)

    def _authorized(self, scope: Scope, *, socket: bool = False) -> bool:
        scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
        offered = [token.strip()] if scheme.lower() == "bearer" else []
        if socket:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            offered += [header(scope, b"xi-api-key") or "", query.get("api_key", "")]
        key = str(self.api_key).encode()
        return any(hmac.compare_digest(candidate.encode(), key) for candidate in offered if candidate)


def _protected(path: str) -> bool:
    return path.startswith("/v1/") or path == "/info"
