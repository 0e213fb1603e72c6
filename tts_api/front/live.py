"""A live stream, as the HTTP process holds it: one synthesis stream whose text a voice-agent socket feeds.

It is admitted like a speech request (a place on the board, a Lease) and forwarded to LitServe the same
way, with a ticket that marks it live: the worker takes its text from the board as it comes (`feed`,
in order) and sends audio, word timings, an `idle` when it has spoken all its client declared complete,
and the end once the client ended the text. Those arrive here as events (`next_event`), at most
EVENTS_AHEAD ahead of the socket that sends them on: the board hears how much audio the socket has taken,
and the worker stays at most the lead limit ahead of that. `cancel` (a barge-in, a closed context or
socket) stops the worker at its next chunk or mid-chunk, and no event of the stream is given out after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Scope

from ..errors import TTSError
from ..ipc.frames import Frame
from ..schemas import SpeechRequest
from .ipc import LoopIpc
from .lease import Lease
from .readrate import ReaderLimits
from .relay import Relay

__all__ = ["EVENTS_AHEAD", "Audio", "End", "Event", "Failed", "Idle", "LiveStream", "Words", "stop"]

EVENTS_AHEAD = 8  # events the worker's frames may run ahead of the socket


@dataclass(frozen=True)
class Audio:
    """Encoded audio, from `start_s` to `end_s` into the stream's audio."""

    data: bytes
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Words:
    """Timings of the words of the audio just given (times from the start of the stream's audio)."""

    words: list[dict[str, Any]]


@dataclass(frozen=True)
class Idle:
    """Everything the client declared complete has been spoken; more text may come."""


@dataclass(frozen=True)
class End:
    """The client ended the text and all of it was spoken."""

    usage: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """The stream failed; nothing more comes."""

    error: TTSError


Event = Audio | Words | Idle | End | Failed
Forward = Callable[[Scope, "asyncio.Future[Message]", SpeechRequest, Lease, Relay], Awaitable[None]]


class _EventRelay(Relay):
    """Frames become events on a bounded queue instead of an HTTP response."""

    def __init__(self, *args: Any, events: asyncio.Queue[Event], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events = events

    async def on_audio(self, data: bytes) -> None:
        await self.events.put(Audio(data, self.audio_start_s, self.audio_end_s))

    async def on_words(self, words: list[dict[str, Any]]) -> None:
        await self.events.put(Words(words))

    async def on_idle(self) -> None:
        await self.events.put(Idle())

    async def on_end(self, end: Frame) -> None:
        await self.events.put(End(end.data().get("usage", {})))

    async def fail(self, error: TTSError) -> None:
        self.finished = True
        await self.events.put(Failed(error))


class LiveStream:
    """See the module docstring. Made by the gateway (`SpeechGateway.open_live`)."""

    def __init__(
        self,
        forward: Forward,
        scope: Scope,
        speech: SpeechRequest,
        lease: Lease,
        ipc: LoopIpc,
        limits: ReaderLimits,
        encoders: Callable[[int], None] | None = None,
    ) -> None:
        self.speech, self.lease, self.ipc = speech, lease, ipc
        self.cancelled = False
        self._events: asyncio.Queue[Event] = asyncio.Queue(EVENTS_AHEAD)
        self._relay = _EventRelay(
            speech,
            lease.ticket,
            _nowhere,
            time.monotonic(),
            lease=lease,
            limits=limits,
            encoders=encoders,
            events=self._events,
        )
        self._disconnect: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(forward(scope, self._disconnect, speech, lease, self._relay))
        self._task.add_done_callback(self._ended)

    @property
    def key(self) -> str:
        return self.lease.ticket.key

    async def feed(self, text: str, *, flush: bool = False, end: bool = False) -> bool:
        """Give the worker more text (in order: each waits for the board); False if the stream is over."""
        if self.cancelled:
            return False
        return bool(await self.ipc.call(self.lease.board.feed, self.key, text, flush=flush, end=end))

    async def next_event(self) -> Event:
        """The stream's next event (after `cancel`, only a Failed)."""
        if self.cancelled:
            return Failed(TTSError("the stream was cancelled"))
        return await self._events.get()

    def cancel(self) -> None:
        """Stop the stream now: the worker drops it, and no more of its events are given out."""
        if self.cancelled:
            return
        self.cancelled = True
        self.lease.cancel("client")
        if not self._disconnect.done():
            self._disconnect.set_result({"type": "http.disconnect"})

    async def aclose(self) -> None:
        """Cancel (unless it ended) and wait until its forward is over; frees what it holds."""
        if not self._task.done():
            self.cancel()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.lease.cancel("client")  # a no-op once the stream ended: its end closed the place
        if self.lease.worker is None:
            # No worker took it (its forward was cut before LitServe queued it, say), so none will close its
            # place; one that finds it queued later reads it gone, as cancelled.
            self.lease.close()
        self._relay.release()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The forward is over: if it ended without a last event (it raised), say the stream failed."""
        if task.cancelled() or self._relay.finished:
            return
        error = task.exception()
        message = f"speech synthesis stopped unexpectedly (request id {self.lease.ticket.request_id})"
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(Failed(TTSError(message if error is None else f"{message}: {error}")))


async def stop(stream: LiveStream, pump: asyncio.Task[None] | None) -> None:
    """Stop a stream and the task that sends its events on (a socket's pump): nothing more of it goes out,
    and what it held is freed."""
    stream.cancel()
    if pump is not None:
        pump.cancel()
    await stream.aclose()


async def _nowhere(message: Message) -> None:
    """A live stream's relay never answers over HTTP."""
