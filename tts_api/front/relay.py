"""Relays: receive what LitServe streams for one request and answer the client in the shape it asked for.

Raw audio bytes, SSE or NDJSON events (audio deltas, word timestamps, done), or one complete file with
Content-Length, each with the right Content-Type. The worker sends PCM; the relay's encoder (encoding.py)
makes the format the client asked for, and is released with the relay however the request ends. A
failure is made visible: a JSON error if nothing was sent yet, an SSE error event, or an aborted
connection (never a clean end of a short file). What the frames say about the job (which worker has it,
how much the client took, that it ended) goes to the request's Lease, which owns its place on the board.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any, Literal

from starlette.types import Message, Send

from ..errors import InvalidRequest, TTSError
from ..formats import media_type
from ..ipc.frames import Frame, FrameError, Ticket
from ..schemas import SpeechRequest
from .encoding import RequestEncoder
from .lease import Lease
from .readrate import ReaderLimits, ReadRate

__all__ = ["SPOOL_MEMORY_BYTES", "ClientStalled", "Relay", "error_response", "relay_for"]

logger = logging.getLogger(__name__)

# A whole file stays in memory up to this size, then moves to a temporary file on disk.
SPOOL_MEMORY_BYTES = 4 * 1024 * 1024
_SEND_PIECE_BYTES = 256 * 1024  # a whole file goes out in pieces of this size, as the client takes them


async def error_response(send: Send, error: TTSError) -> None:
    """Send `error` as a complete OpenAI-shaped JSON response."""
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers().items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ClientStalled(Exception):
    """Raised when the client took none of the response for longer than the idle timeout (`idle`), or
    took it slower than the read-rate floor while the server waited on it (`slow`)."""

    def __init__(self, message: str, reason: Literal["idle", "slow"] = "idle") -> None:
        super().__init__(message)
        self.reason: Literal["idle", "slow"] = reason


class Relay:
    """Receives what LitServe sends for one request and answers the client in the requested shape.

    Subclasses decide what audio, the end and an error look like on the wire. A send the client does
    not take for the idle timeout raises ClientStalled; `rate` measures how fast the client takes its audio
    while the server waits on it (the gateway cuts one that is too slow). `release` frees what the relay
    holds (its encoder, a file), however the request ended; `encoders` hears its encoder open and close.
    """

    def __init__(
        self,
        speech: SpeechRequest,
        ticket: Ticket,
        send: Send,
        received_at: float,
        *,
        lease: Lease,
        limits: ReaderLimits,
        encoders: Callable[[int], None] | None = None,
    ) -> None:
        self.speech = speech
        self.ticket = ticket
        self._send = send
        self.received_at = received_at
        self.lease = lease
        self.idle_timeout_s = limits.idle_timeout_s
        self.rate = ReadRate(limits.min_read_rate, limits.read_window_s)
        self.started = False  # the client's response has begun
        self.finished = False  # the response is complete or cut: nothing more goes to the client
        self.first_audio_s: float | None = None
        self.progressed = False  # the worker has synthesized some of the audio (sent or not)
        self.delivery_s: list[float] = []
        self.audio_start_s = 0.0  # where in the response's audio the bytes `on_audio` is given begin...
        self.audio_end_s = 0.0  # ...and end
        self._inner_status = 200
        self._inner_body: list[bytes] = []
        self.encoder = RequestEncoder(speech, encoders)  # last: nothing after it can fail and leak it

    async def __call__(self, message: Message) -> None:
        if self.finished or self.lease.ended == "cancelled":  # over, or the client left
            return
        if message["type"] == "http.response.start":
            self._inner_status = message["status"]  # held back: our headers go out with the first audio
            return
        chunk, more = message.get("body", b""), message.get("more_body", False)
        if self._inner_status != 200:
            await self._relay_inner_error(chunk, more)
            return
        if chunk:
            await self._on_item(chunk)
        if not more and not self.finished:
            # LitServe ended the stream without our end frame: the worker crashed or timed out.
            self.lease.close()
            await self.fail(
                TTSError(f"speech synthesis stopped unexpectedly (request id {self.ticket.request_id})")
            )

    async def _on_item(self, item: bytes) -> None:
        try:
            frame = self.ticket.parse(item)
        except FrameError as exc:
            await self._abandon(TTSError(str(exc)))
            return
        if frame.kind == "audio":
            self.progressed = True
            if frame.audio:
                try:
                    data = await self.encoder.write(frame.audio)
                except Exception as exc:  # a codec's failure is this request's, not the process's
                    await self._abandon(self._encoding_failed(exc))
                    return
                # A codec may hold its first bytes back: the audio they reach goes with the next ones.
                if data:
                    await self._audio(data, frame)
            # The client has the audio this far (the worker runs at most the lead limit ahead): a stream's
            # bytes were sent; a whole file's are in its file, which counts as taken (its client takes
            # nothing before the end, and the lead limit would otherwise wait for it forever).
            self.lease.delivered(frame.audio_end_s)
        elif frame.kind == "start":
            self.lease.working(frame.worker())
        elif frame.kind == "words":
            await self.on_words(frame.data())
        elif frame.kind == "idle":
            await self.on_idle()
        elif frame.kind == "end":
            # Everything is synthesized: a client that hangs up while the last bytes go out cancels nothing.
            self.lease.close()
            try:
                tail = await self.encoder.finish()
            except Exception as exc:
                await self.fail(self._encoding_failed(exc))
                return
            if tail:
                await self._audio(tail, frame)
            self.finished = True
            await self.on_end(frame)
        else:
            self.lease.close()  # the worker ended the job with this error
            await self.fail(frame.error())

    async def _audio(self, data: bytes, frame: Frame) -> None:
        """Send encoded bytes that reach as far into the audio as `frame`'s samples (or the end's)."""
        self.delivery_s.append(max(0.0, time.monotonic() - frame.sent_at))
        if self.first_audio_s is None:
            self.first_audio_s = time.monotonic() - self.received_at
        if frame.kind == "audio":
            self.audio_start_s, self.audio_end_s = self.audio_end_s, frame.audio_end_s
        else:  # the encoder's tail: the end of audio already counted
            self.audio_start_s = self.audio_end_s
        await self.on_audio(data)
        self.taken(self.audio_end_s)

    def _encoding_failed(self, exc: Exception) -> TTSError:
        logger.exception("request %s: encoding failed", self.ticket.request_id, exc_info=exc)
        return TTSError(f"encoding the audio failed (request id {self.ticket.request_id})")

    async def _abandon(self, error: TTSError) -> None:
        """Fail the request and stop its synthesis: nothing more of it can reach the client."""
        self.lease.cancel("failed")
        await self.fail(error)

    async def _relay_inner_error(self, chunk: bytes, more: bool) -> None:
        """LitServe itself refused the request (auth, its own 500): pass it on in the OpenAI shape."""
        self.lease.close()  # never queued: no worker will close it
        self._inner_body.append(chunk)
        if more:
            return
        try:
            detail = json.loads(b"".join(self._inner_body)).get("detail")
        except (json.JSONDecodeError, AttributeError):
            detail = None
        error = TTSError(str(detail or "request failed"), status=self._inner_status)
        if self._inner_status < 500:
            error.type = InvalidRequest.type
        await self.fail(error)

    async def send(self, message: Message) -> None:
        """Send to the client; ClientStalled if it takes nothing for the idle timeout."""
        self.rate.blocked()
        try:
            await asyncio.wait_for(self._send(message), self.idle_timeout_s)
        except asyncio.TimeoutError:
            raise ClientStalled(
                f"request {self.ticket.request_id}: the client read nothing for {self.idle_timeout_s:g} s"
            ) from None
        finally:
            self.rate.unblocked()

    def taken(self, audio_end_s: float) -> None:
        """The client took the audio up to `audio_end_s` (a stream's, once its bytes are sent)."""
        self.rate.took(audio_end_s)

    async def start(self, content_type: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-cache")]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers + (extra or [])})
        self.started = True

    async def body(self, data: bytes, *, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def fail(self, error: TTSError) -> None:
        """End the response with `error`, as visibly as what was sent already allows."""
        logger.error("request %s failed: %s", self.ticket.request_id, error.message)
        self.finished = True
        if not self.started:
            await error_response(self.send, error)
        else:
            await self.on_error_after_start(error)

    def release(self) -> None:
        """Free what the relay holds (called once the request is over, however it ended)."""
        self.encoder.close()

    async def on_audio(self, data: bytes) -> None:
        raise NotImplementedError

    async def on_end(self, end: Frame) -> None:
        raise NotImplementedError

    async def on_words(self, words: list[dict[str, Any]]) -> None:
        """Word timestamps: only event streams carry them."""

    async def on_idle(self) -> None:
        """A live stream spoke all its client declared complete (front/live.py)."""

    async def on_error_after_start(self, error: TTSError) -> None:
        """Cut the transfer: returning without the final chunk makes the server close the connection,
        so the client sees a broken transfer instead of a clean, silently short file."""


class _AudioStream(Relay):
    """Chunked audio bytes as the encoder produces them."""

    async def on_audio(self, data: bytes) -> None:
        if not self.started:
            # X-Accel-Buffering: tell nginx-style proxies not to hold back the stream.
            await self.start(
                media_type(self.speech.response_format, self.speech.rate),
                [(b"x-accel-buffering", b"no")],
            )
        await self.body(data)

    async def on_end(self, end: Frame) -> None:
        if not self.started:
            await self.start(media_type(self.speech.response_format, self.speech.rate))
        await self.body(b"", more=False)


class _EventStream(Relay):
    """Server-sent events: base64 audio deltas and word timestamps, then `speech.audio.done`.

    A failure after the first event becomes an `error` event. `ndjson` sends the same events as
    one JSON object per line.
    """

    async def _event(self, event: dict[str, Any], *, more: bool = True) -> None:
        ndjson = self.speech.stream_format == "ndjson"
        if not self.started:
            content_type = "application/x-ndjson" if ndjson else "text/event-stream"
            await self.start(content_type, [(b"x-accel-buffering", b"no")])
        line = json.dumps(event)
        await self.body(f"{line}\n".encode() if ndjson else f"data: {line}\n\n".encode(), more=more)

    async def on_audio(self, data: bytes) -> None:
        await self._event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})

    async def on_words(self, words: list[dict[str, Any]]) -> None:
        await self._event({"type": "speech.word_timestamps", "words": words})

    async def on_end(self, end: Frame) -> None:
        await self._event({"type": "speech.audio.done", "usage": end.data().get("usage", {})}, more=False)

    async def on_error_after_start(self, error: TTSError) -> None:
        await self._event({"type": "error", **error.body()}, more=False)


class _WholeFile(Relay):
    """`stream: false`: the complete file in one response with Content-Length.

    The file is built in a temporary file that stays in memory up to SPOOL_MEMORY_BYTES and moves to
    disk beyond, then goes out in pieces as the client takes them. Audio written to it counts as taken by
    the client (`delivered`): what the lead limit bounds is memory, and this audio no longer holds any.
    The encoder hands its bytes out as it makes them; what it fixes once the end is known (a WAV's sizes,
    MP3's Info frame, FLAC's STREAMINFO) it gives as patches, written in here before the file goes out.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Closed by `release`, however the request ends (the gateway calls it).
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, prefix="tts-whole-")  # noqa: SIM115
        self._size = 0

    async def on_audio(self, data: bytes) -> None:
        # In a thread: past the memory threshold this is a disk write, and the loop serves everyone.
        await asyncio.to_thread(self._file.write, data)
        self._size += len(data)

    def taken(self, audio_end_s: float) -> None:
        """Written to the file, not taken by the client: that starts with the end (`on_end`)."""

    async def on_end(self, end: Frame) -> None:
        patches = self.encoder.patches
        if any(offset < 0 or offset + len(data) > self._size for offset, data in patches):
            await self.fail(TTSError(f"request {self.ticket.request_id}: a header fix lies outside the file"))
            return
        if patches:
            await asyncio.to_thread(self._patch, patches)
        await self.start(
            media_type(self.speech.response_format, self.speech.rate),
            [(b"content-length", str(self._size).encode())],
        )
        await asyncio.to_thread(self._file.seek, 0)
        audio_s, sent = float(end.data().get("audio_seconds", 0.0)), 0
        piece = await asyncio.to_thread(self._file.read, _SEND_PIECE_BYTES)
        while True:
            following = await asyncio.to_thread(self._file.read, _SEND_PIECE_BYTES) if piece else b""
            await self.body(piece, more=bool(following))
            sent += len(piece)
            self.rate.took(audio_s * sent / max(1, self._size))  # the file's share the client has taken
            if not following:
                return
            piece = following

    def _patch(self, patches: list[tuple[int, bytes]]) -> None:
        for offset, data in patches:
            self._file.seek(offset)
            self._file.write(data)

    def release(self) -> None:
        super().release()
        self._file.close()


def relay_for(speech: SpeechRequest, *args: Any, **kwargs: Any) -> Relay:
    """The relay for the response shape `speech` asks for (arguments as for Relay)."""
    if not speech.stream:
        return _WholeFile(speech, *args, **kwargs)
    if speech.stream_format in ("sse", "ndjson"):
        return _EventStream(speech, *args, **kwargs)
    return _AudioStream(speech, *args, **kwargs)
