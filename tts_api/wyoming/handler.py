"""One Wyoming connection: `describe`, `synthesize`, and the streaming `synthesize-start/chunk/stop`.

Audio goes out as it arrives from the server: `audio-start`, `audio-chunk`s (16-bit PCM, 24 kHz mono),
`audio-stop`. In a text stream each sentence is synthesized as soon as it is complete, in order, while
more text arrives; the stream ends with `audio-stop` and `synthesize-stopped`. A failure is sent as an
`error` event and the connection is closed, so the client never waits for audio that will not come.

Events are read with bounds (the wyoming package reads whatever length a header declares): a header line
of at most 64 KiB, data and payload of at most MAX_EVENT_BYTES; a text stream of at most MAX_TEXT_CHARS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from ..clients.http import ClientError
from ..formats import BYTES_PER_SAMPLE, SAMPLE_RATE
from ..text.planning import GAP_AFTER_S
from .sentences import SentenceCutter, TextTooLong
from .speech import SpeechServer

__all__ = ["SpeechHandler"]

logger = logging.getLogger(__name__)

_Parsed = TypeVar("_Parsed", Synthesize, SynthesizeStart, SynthesizeChunk)
MAX_EVENT_BYTES = 256 * 1024  # an event's data and payload: a TTS client sends text, never megabytes
SAMPLES_PER_CHUNK = 2048  # ~85 ms per audio-chunk event: small enough for satellites to start at once
# Separately synthesized sentences are joined with the silence the server's planner puts after a sentence.
SENTENCE_GAP_BYTES = round(GAP_AFTER_S["sentence"] * SAMPLE_RATE) * BYTES_PER_SAMPLE


class AudioOut:
    """Writes one audio stream to the client: `audio-start` before the first chunk, `audio-stop` last."""

    def __init__(self, write: Callable[[Event], Awaitable[None]]) -> None:
        self._write = write
        self.started = False
        self.samples = 0

    async def pcm(self, data: bytes) -> None:
        if not self.started:
            await self._write(AudioStart(rate=SAMPLE_RATE, width=BYTES_PER_SAMPLE, channels=1).event())
            self.started = True
        step = SAMPLES_PER_CHUNK * BYTES_PER_SAMPLE
        for at in range(0, len(data), step):
            piece = data[at : at + step]
            chunk = AudioChunk(rate=SAMPLE_RATE, width=BYTES_PER_SAMPLE, channels=1, audio=piece)
            await self._write(chunk.event())
        self.samples += len(data) // BYTES_PER_SAMPLE

    async def stop(self) -> None:
        if not self.started:  # no audio at all: still a well-formed (empty) stream
            await self._write(AudioStart(rate=SAMPLE_RATE, width=BYTES_PER_SAMPLE, channels=1).event())
        await self._write(AudioStop().event())


class TextStream:
    """Text arriving in chunks, spoken sentence by sentence, in order, while more text arrives.

    Sentences that are waiting when the previous one is done go to the server together: one request
    speaks them with the server's own pacing, and fewer requests mean less overhead.
    """

    def __init__(self, speak: Callable[[str, bool], Awaitable[None]]) -> None:
        self._speak = speak
        self._cutter = SentenceCutter()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name="wyoming text stream")

    def add(self, text: str) -> None:
        for sentence in self._cutter.add(text):
            self._queue.put_nowait(sentence)

    async def finish(self) -> None:
        """Speak what is left and wait until all of it went out; raise what synthesis raised."""
        rest = self._cutter.finish()
        if rest:
            self._queue.put_nowait(rest)
        self._queue.put_nowait(None)
        await self.task

    def cancel(self) -> None:
        self.task.cancel()

    async def _run(self) -> None:
        first = True
        ended = False
        while not ended:
            sentence = await self._queue.get()
            if sentence is None:
                return
            texts = [sentence]
            while not self._queue.empty():
                waiting = self._queue.get_nowait()
                if waiting is None:
                    ended = True
                    break
                texts.append(waiting)
            await self._speak(" ".join(texts), first)
            first = False


class BadEvent(ValueError):
    """Raised when a client sends something that is not a Wyoming event within the bounds."""


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None at the end of the stream; BadEvent for a malformed or oversized one."""
    try:
        line = await reader.readline()  # at most the reader's limit (64 KiB), else ValueError
    except ValueError:
        raise BadEvent("an event header is longer than 64 KiB") from None
    if not line:
        return None
    try:
        header = json.loads(line)
        lengths = [int(header.get(key) or 0) for key in ("data_length", "payload_length")]
        kind = str(header["type"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadEvent("an event header is not Wyoming's JSON") from None
    if any(n < 0 or n > MAX_EVENT_BYTES for n in lengths) or sum(lengths) > MAX_EVENT_BYTES:
        raise BadEvent(f"an event's data and payload may take at most {MAX_EVENT_BYTES} bytes")
    data = header.get("data") or {}
    try:
        if lengths[0]:
            data = {**data, **json.loads(await reader.readexactly(lengths[0]))}
        payload = await reader.readexactly(lengths[1]) if lengths[1] else None
    except asyncio.IncompleteReadError:
        return None  # the client left mid-event
    except (ValueError, TypeError):
        raise BadEvent("an event's data is not a JSON object") from None
    if not isinstance(data, dict):
        raise BadEvent("an event's data is not a JSON object")
    return Event(type=kind, data=data, payload=payload)


def _parsed(kind: type[_Parsed], event: Event) -> _Parsed:
    """`kind.from_event(event)`, or BadEvent if its fields are missing or of the wrong type."""
    try:
        parsed = kind.from_event(event)
        voice = getattr(parsed, "voice", None)
        if not isinstance(getattr(parsed, "text", ""), str) or not (
            voice is None or (isinstance(voice.name or "", str) and isinstance(voice.language or "", str))
        ):
            raise TypeError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BadEvent(f"a {event.type!r} event without the fields Wyoming gives it") from None
    return parsed


class SpeechHandler(AsyncEventHandler):
    """Answers one client's events, synthesizing through `server`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: SpeechServer
    ) -> None:
        super().__init__(reader, writer)
        self.server = server
        self._stream: TextStream | None = None
        self._out: AudioOut | None = None
        self._voice = server.default_voice

    async def run(self) -> None:
        """The wyoming package's loop, reading each event with `read_event`'s bounds."""
        try:
            while True:
                try:
                    event = await read_event(self.reader)
                except BadEvent as exc:
                    logger.warning("wyoming client sent a bad event: %s", exc)
                    with contextlib.suppress(ConnectionError):
                        await self.write_event(Error(text=str(exc), code=type(exc).__name__).event())
                    break
                if event is None or not await self.handle_event(event):
                    break
        finally:
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        try:
            if Describe.is_type(event.type):
                await self.write_event((await self.server.info()).event())
            elif Synthesize.is_type(event.type):
                # Home Assistant also sends the whole text as `synthesize` inside a text stream, for
                # services that cannot stream; this one already has it from the chunks.
                if self._stream is None:
                    await self._synthesize(_parsed(Synthesize, event))
            elif SynthesizeStart.is_type(event.type):
                start = _parsed(SynthesizeStart, event)
                if self._stream is not None:  # a new stream replaces one the client never stopped
                    self._stream.cancel()
                    self._stream = None
                self._voice = await self.server.voice_for(start.voice)
                self._out = AudioOut(self.write_event)
                self._stream = TextStream(self._speak)
            elif SynthesizeChunk.is_type(event.type) and self._stream is not None:
                self._raise_if_failed(self._stream)
                self._stream.add(_parsed(SynthesizeChunk, event).text)
            elif SynthesizeStop.is_type(event.type) and self._stream is not None:
                stream, self._stream = self._stream, None
                await stream.finish()
                assert self._out is not None
                await self._out.stop()
                await self.write_event(SynthesizeStopped().event())
        except (ClientError, TextTooLong, BadEvent) as exc:
            logger.warning("wyoming request failed: %s", exc)
            await self.write_event(Error(text=str(exc), code=type(exc).__name__).event())
            return False  # close: the client must not wait for audio that will not come
        return True

    async def disconnect(self) -> None:
        if self._stream is not None:
            self._stream.cancel()  # the client left: stop reading from the server (it cancels synthesis)

    async def _synthesize(self, request: Synthesize) -> None:
        voice = await self.server.voice_for(request.voice)
        out = AudioOut(self.write_event)
        # aclosing: if the client goes away mid-stream, the HTTP request is closed now (the server then
        # cancels the synthesis), not whenever the generator is collected.
        async with contextlib.aclosing(self.server.pcm(request.text, voice)) as audio:
            async for data in audio:
                await out.pcm(data)
        await out.stop()
        logger.info(
            "synthesize: %d characters -> %.2f s of audio", len(request.text), out.samples / SAMPLE_RATE
        )

    async def _speak(self, text: str, first: bool) -> None:
        assert self._out is not None
        gap = not first
        async with contextlib.aclosing(self.server.pcm(text, self._voice)) as audio:
            async for data in audio:
                if gap:
                    await self._out.pcm(bytes(SENTENCE_GAP_BYTES))
                    gap = False
                await self._out.pcm(data)

    @staticmethod
    def _raise_if_failed(stream: TextStream) -> None:
        """Report a sentence that failed while the client still sends text, not only at the end."""
        if stream.task.done() and not stream.task.cancelled():
            exc = stream.task.exception()
            if exc is not None:
                raise exc
