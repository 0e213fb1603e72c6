"""One voice-agent socket's bounds (front/sockets/connection.py), with a stand-in for Starlette's WebSocket:
the inactivity timeout and what a client may ask of it, and a client that takes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.websockets import WebSocketState

from tts_api.front.sockets.connection import Closed, Connection, PolicyViolation, SocketLimits


class _Socket:
    """Messages the client sends, as `receive` hands them out; sends that the client never takes."""

    def __init__(self, *messages: dict[str, Any], takes_sends: bool = True) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in messages:
            self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})
        self.takes_sends = takes_sends
        self.application_state = WebSocketState.CONNECTED

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send_text(self, data: str) -> None:
        if not self.takes_sends:
            await asyncio.Event().wait()  # the client's buffers are full: the send never completes


def connection(socket: _Socket, asked_s: float | None = None, **limits: Any) -> Connection:
    return Connection(socket, SocketLimits(**limits), asked_s)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("asked_s", "limits", "expected_s"),
    [
        (None, {"inactivity_s": 20.0}, 20.0),
        (5.0, {"inactivity_s": 20.0}, 5.0),
        (900.0, {"inactivity_s": 20.0, "max_inactivity_s": 180.0}, 180.0),
        (None, {"inactivity_s": 600.0, "max_inactivity_s": 180.0}, 600.0),  # the server's own choice stands
    ],
    ids=["default", "asked-less", "asked-too-much", "server-setting-above-the-clients-bound"],
)
def test_the_inactivity_timeout_is_the_clients_within_the_bound(
    asked_s: float | None, limits: dict[str, float], expected_s: float
) -> None:
    assert connection(_Socket(), asked_s, **limits).inactivity_s == expected_s


def test_a_silent_client_crosses_the_inactivity_bound() -> None:
    async def scenario() -> None:
        link = connection(_Socket({"text": "hi"}), 0.05)
        assert await link.receive() == {"text": "hi"}
        with pytest.raises(PolicyViolation, match=r"no message for 0\.05 s"):
            await link.receive()

    asyncio.run(scenario())


def test_a_client_that_takes_nothing_ends_the_socket_not_only_the_send() -> None:
    async def scenario() -> None:
        link = connection(_Socket(takes_sends=False), inactivity_s=60.0, send_timeout_s=0.05)
        reader = asyncio.ensure_future(link.receive())  # waits for the client, well within inactivity
        with pytest.raises(Closed):
            await link.send({"audio": "..."})
        with pytest.raises(Closed):
            await asyncio.wait_for(reader, 5.0)  # the reader stops too: the socket's contexts end
        with pytest.raises(Closed):
            await link.send({"isFinal": True})

    asyncio.run(scenario())
