"""Admission of a speech request: read and validate its body, then take a place on the stream board.

The body is validated with the same schema the workers use, so a bad request gets a 4xx OpenAI-shaped
JSON before anything is queued (LitServe would answer 200 with an empty body). A valid one takes one of
`max_pending` places on the board through a Lease (lease.py), or is refused with 503 + Retry-After (busy,
shutting down, the shared state not answering, or requests waiting that the measured pace would keep it
behind for longer than `max_wait_s`).
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

from ..errors import InputTooLong
from ..ipc.frames import Ticket
from ..ipc.manager import BoardProxy
from ..schemas import RequestContext, SpeechRequest, parse_speech_request
from .ipc import LoopIpc
from .lease import Lease

__all__ = ["Admission", "ClientGone"]

# JSON may escape one character into up to 6 bytes (\uXXXX), plus room for the other fields.
_BODY_BYTES_PER_CHAR = 6
_BODY_SLACK_BYTES = 64 * 1024
_INLINE_PARSE_BYTES = 16 * 1024


class ClientGone(Exception):
    """Raised when the client disconnects before its request body arrived."""


class Admission:
    """See the module docstring. `admit` returns the validated request and its lease, or raises TTSError."""

    def __init__(
        self,
        context: RequestContext,
        board: BoardProxy,
        ipc: LoopIpc,
        max_pending: int,
        max_wait_s: float = 0.0,
    ) -> None:
        self.context, self.board, self.ipc = context, board, ipc
        self.max_pending, self.max_wait_s = max_pending, max_wait_s
        self.max_body_bytes = context.max_input_chars * _BODY_BYTES_PER_CHAR + _BODY_SLACK_BYTES

    async def admit(self, receive: Receive, ticket: Ticket) -> tuple[SpeechRequest, Lease]:
        """Read and validate the body, then take a place on the board; TTSError says why not."""
        body = await self._read_body(receive)
        if len(body) > _INLINE_PARSE_BYTES:  # planning a long text takes milliseconds: not on the loop
            planned = await asyncio.to_thread(parse_speech_request, body, self.context)
        else:
            planned = parse_speech_request(body, self.context)
        lease = await Lease.take(self.board, self.ipc, ticket, self.max_pending, self.max_wait_s)
        return planned.request, lease  # the plan was for validation; the worker makes its own

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise InputTooLong(f"request body is larger than {self.max_body_bytes} bytes", param="input")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
