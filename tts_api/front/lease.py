"""A speech request's place on the stream board, held by one owner from admission to the request's end.

The place (a board entry, ipc/streams.py) counts against `max_pending`, feeds `tts_load` and holds up a
drain, so every way a request ends must give it back. The Lease is the only thing in the HTTP process that
touches the entry; the gateway and the relay tell it what happened, and it decides:
- the job is over (the worker's end or error frame, LitServe refusing the request, the stream cut off,
  the worker found dead): `close` it now, whatever the client does next;
- the client went away or stopped reading before that: `cancel` it, so the worker stops before its next
  chunk and closes it; the board closes it itself if that worker dies first (`working` names it);
- the board answered an admission after its caller had given up: the answer's entry is closed at once.
Each of these acts once; whichever comes first wins, and closing twice is harmless anywhere.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from ..errors import Overloaded
from ..ipc.frames import Ticket
from ..ipc.manager import BoardProxy
from ..ipc.streams import Admission, CancelReason
from ..ipc.workers import WorkerProcess
from .ipc import IpcError, LoopIpc

__all__ = ["RETRY_AFTER_S", "Lease"]

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 2


class Lease:
    """One request's board entry, as the HTTP process holds it: see the module docstring."""

    def __init__(self, board: BoardProxy, ipc: LoopIpc, ticket: Ticket) -> None:
        self.board, self.ipc, self.ticket = board, ipc, ticket
        self.worker: WorkerProcess | None = None
        self.ended: Literal["closed", "cancelled"] | None = None
        self.delivered_s = 0.0

    @classmethod
    async def take(
        cls, board: BoardProxy, ipc: LoopIpc, ticket: Ticket, limit: int, max_wait_s: float = 0.0
    ) -> Lease:
        """A place on the board for `ticket`'s request; Overloaded (503) if the board is full, drains, does
        not answer in time, or (`max_wait_s` > 0) says the request would wait longer than that to start."""
        key = ticket.key

        def give_back(answer: Admission) -> None:
            if answer == "admitted":
                board.close(key)

        try:
            answer = await ipc.call_or_undo(give_back, board.open, key, limit, max_wait_s)
        except IpcError as exc:
            logger.error("request %s refused: %s", ticket.request_id, exc)
            raise Overloaded(
                "the server cannot admit requests right now; retry shortly", retry_after_s=RETRY_AFTER_S
            ) from None
        if answer == "draining":
            raise Overloaded(
                "the server is shutting down; retry on another replica", retry_after_s=RETRY_AFTER_S
            )
        if answer == "behind":
            try:
                wait_s = await ipc.call(board.wait_estimate)
            except IpcError:
                wait_s = None
            raise Overloaded(
                f"the server would start this request in about {wait_s or max_wait_s:.0f} s, longer than its "
                f"queue-wait limit ({max_wait_s:g} s); retry later or on another replica",
                retry_after_s=max(1, math.ceil((wait_s or max_wait_s) - max_wait_s)),
            )
        if answer != "admitted":
            raise Overloaded(
                f"the server is busy with {limit} requests; retry shortly", retry_after_s=RETRY_AFTER_S
            )
        return cls(board, ipc, ticket)

    @property
    def settled(self) -> bool:
        """The front has let go: the entry is closed, or left to its worker to close."""
        return self.ended is not None

    def working(self, worker: WorkerProcess) -> None:
        """`worker` has taken the request (its start frame)."""
        self.worker = worker
        if self.ended is None:
            self.ipc.post(self.board.claim, self.ticket.key, worker)

    def delivered(self, audio_s: float) -> None:
        """The client has taken `audio_s` seconds of audio: the worker may run that much further."""
        self.delivered_s = max(self.delivered_s, audio_s)
        if self.ended is None:
            self.ipc.post(self.board.delivered, self.ticket.key, audio_s)

    def close(self) -> None:
        """The job is over, or no worker will end it: give the place back now."""
        if self.ended != "closed":
            self.ended = "closed"
            self.ipc.post(self.board.close, self.ticket.key)

    def cancel(self, reason: CancelReason) -> None:
        """The client left (or stalled) before the end: the worker stops and gives the place back."""
        if self.ended is None:
            self.ended = "cancelled"
            self.ipc.post(self._cancel, reason, self.delivered_s)

    def _cancel(self, reason: CancelReason, audio_s: float) -> None:
        if self.board.cancel(self.ticket.key, reason):
            why = {
                "client": "went away",
                "idle": "stopped reading",
                "slow": "read too slowly",
                "queued": "waited too long for a worker",
                "failed": "could not be sent its audio",
            }.get(reason, reason)
            logger.info(
                "request %s: client %s after %.2f s of audio; cancelling synthesis",
                self.ticket.request_id,
                why,
                audio_s,
            )
