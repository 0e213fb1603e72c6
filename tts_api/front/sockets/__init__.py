"""The voice-agent sockets: text streamed in, audio and timings out, over the protocols agents already speak.

ElevenLabs' `multi-stream-input` and `stream-input` (Pipecat, LiveKit) and Together's
`/v1/audio/speech/websocket` (Pipecat), each context a live stream (front/live.py) admitted like a speech
request. The API key (when set) is checked by ApiKeyAuth before the socket is accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ...schemas import RequestContext
from . import elevenlabs, together
from .connection import Connection, SocketLimits

if TYPE_CHECKING:
    from ..gateway import SpeechGateway

__all__ = ["SocketLimits", "SocketRoutes"]


class SocketRoutes:
    """The paths the sockets serve, and serving a connection on one (the gateway's `Sockets`)."""

    def __init__(self, context: RequestContext, limits: SocketLimits) -> None:
        self.context, self.limits = context, limits

    def serves(self, scope: Scope) -> bool:
        path = scope["path"]
        return path == together.PATH or elevenlabs.PATH.fullmatch(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, gateway: SpeechGateway) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        if scope["path"] == together.PATH:
            # Together's clients send nothing between turns: its sockets get the longest silence allowed.
            connection = Connection(websocket, self.limits, self.limits.max_inactivity_s)
            await together.TogetherSocket(connection, gateway, scope, self.context).run()
        else:
            connection = Connection(
                websocket,
                self.limits,
                elevenlabs.ElevenLabsSocket.inactivity_s(scope),
                hint="; send keepalives, or ask for up to "
                f"{max(self.limits.max_inactivity_s, self.limits.inactivity_s):g} s with inactivity_timeout",
            )
            await elevenlabs.ElevenLabsSocket(connection, gateway, scope, self.context).run()
        await connection.close(1000)
