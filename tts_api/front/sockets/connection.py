"""One voice-agent WebSocket with its bounds: message size and rate, inactivity, text per socket, and sends
that the client must take in time.

Every bound has a setting (SocketLimits, from Settings) and, when crossed, the protocol's own error message
(the protocol module says how it looks) followed by a close with 1008 (policy violation); 1009 for a
message too big. Sends from the contexts' pumps and the reader are serialized, each bounded by the idle
timeout: a client that takes nothing is cut (the reader stops too, and the socket closes), and its contexts
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["Closed", "Connection", "PolicyViolation", "SocketLimits"]


@dataclass(frozen=True)
class SocketLimits:
    """The bounds of one socket (see README's configuration table)."""

    max_contexts: int = 8  # contexts open at once
    max_message_bytes: int = 64 * 1024  # one message from the client
    max_messages_per_s: float = 100.0  # sustained; bursts of twice as many pass
    inactivity_s: float = 20.0  # nothing from the client this long: the socket closes (ElevenLabs' default)
    max_inactivity_s: float = 180.0  # the most a client may ask for (`inactivity_timeout`); Together's bound
    max_chars: int = 500_000  # text over the socket's life
    send_timeout_s: float = 60.0  # a send the client does not take this long cuts it


class Closed(Exception):
    """Raised when the client closed the socket (or broke it)."""


class PolicyViolation(Exception):
    """Raised when the client crossed a bound: its message says which; `code` is the close code."""

    def __init__(self, message: str, code: int = 1008) -> None:
        super().__init__(message)
        self.code = code


class Connection:
    """See the module docstring. `receive` gives the next JSON object; `send` sends one."""

    def __init__(
        self, websocket: WebSocket, limits: SocketLimits, inactivity_s: float | None = None, hint: str = ""
    ) -> None:
        """`inactivity_s`: what the client asked for (at most the bound), else the default; `hint`: how the
        protocol's client keeps a socket open, for the inactivity error."""
        self.websocket, self.limits, self.hint = websocket, limits, hint
        self.inactivity_s = (
            min(inactivity_s, max(limits.max_inactivity_s, limits.inactivity_s))
            if inactivity_s
            else limits.inactivity_s
        )
        self._broken = asyncio.Event()  # a send the client did not take: the socket is done
        self._lock = asyncio.Lock()
        self._tokens = 2 * limits.max_messages_per_s  # a bucket: bursts of twice the rate pass
        self._refilled = time.monotonic()
        self.chars = 0  # text received over the socket's life

    async def receive(self) -> dict[str, Any]:
        """The client's next message, a JSON object; Closed, or PolicyViolation for one out of bounds."""
        receiving = asyncio.ensure_future(self.websocket.receive())
        broken = asyncio.ensure_future(self._broken.wait())
        try:
            await asyncio.wait(
                {receiving, broken}, timeout=self.inactivity_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            broken.cancel()
            if not receiving.done():
                receiving.cancel()
        if self._broken.is_set():
            raise Closed
        if not receiving.done():
            raise PolicyViolation(
                f"no message for {self.inactivity_s:g} s (the inactivity timeout{self.hint})"
            )
        message = receiving.result()
        if message["type"] == "websocket.disconnect":
            raise Closed
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", "replace")
        if len(raw.encode()) > self.limits.max_message_bytes:
            raise PolicyViolation(
                f"a message is larger than {self.limits.max_message_bytes} bytes", code=1009
            )
        self._take_token()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise PolicyViolation("a message is not JSON") from None
        if not isinstance(data, dict):
            raise PolicyViolation("a message is not a JSON object")
        return data

    def count_text(self, text: str) -> None:
        """Text the socket carried; PolicyViolation past the socket's bound."""
        self.chars += len(text)
        if self.chars > self.limits.max_chars:
            raise PolicyViolation(f"more than {self.limits.max_chars} characters of text on one socket")

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON object; Closed if the client is gone or took nothing for the send timeout."""
        data = json.dumps(message)
        async with self._lock:
            if self.websocket.application_state != WebSocketState.CONNECTED:
                raise Closed
            if self._broken.is_set():
                raise Closed
            try:
                await asyncio.wait_for(self.websocket.send_text(data), self.limits.send_timeout_s)
            except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
                self._broken.set()  # the reader stops too: the socket ends, and every context with it
                raise Closed from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        async with self._lock:
            if self.websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(asyncio.TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
                    await asyncio.wait_for(self.websocket.close(code, reason[:120]), 5.0)

    def _take_token(self) -> None:
        now = time.monotonic()
        rate = self.limits.max_messages_per_s
        self._tokens = min(2 * rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1:
            raise PolicyViolation(f"more than {rate:g} messages a second")
        self._tokens -= 1
