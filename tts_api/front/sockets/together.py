"""Together AI's text-in socket (`/v1/audio/speech/websocket`), as Pipecat's TogetherTTSService speaks it.

Query: `model` (`hexgrad/Kokoro-82M`, or any of the server's model ids), `voice`, `response_format` (raw
PCM by default; `pcm`, `raw`, `ulaw`), `sample_rate` (24000 by default), `alignment=word` for word
timestamps; `language` and `max_partial_length` are accepted and ignored. The client appends text
(`input_text_buffer.append`), commits it (`input_text_buffer.commit`: speak it now), clears it
(`input_text_buffer.clear`: a barge-in; nothing more of it is sent) and updates the session's voice
(`tts_session.updated`). The server announces the session (`session.created`), acknowledges each committed
item (`conversation.item.input_text.received`), streams `conversation.item.audio_output.delta` (base64
PCM), `conversation.item.word_timestamps`, and `conversation.item.audio_output.done` once it has spoken all
that was committed; failures are `conversation.item.tts.failed`, protocol errors `error`.

One live stream at a time carries a run of commits, so the player keeps playing across them; it ends, with
`done`, when it has spoken everything and the client's turn is over: an empty commit (Pipecat sends one at
the end of a turn), or nothing new for IDLE_GRACE_S. Pipecat ends its audio context at the first `done`:
one `done` per item would drop the audio of a turn's later sentences.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ...errors import InvalidRequest, TTSError
from ...ipc.frames import Ticket
from ...schemas import MODEL_IDS, RequestContext, SpeechRequest
from ..live import Audio, End, Failed, Idle, LiveStream, Words, stop
from .connection import Closed, Connection, PolicyViolation
from .speech import OutputFormat, live_request

if TYPE_CHECKING:
    from starlette.types import Scope

    from ..gateway import SpeechGateway

__all__ = ["PATH", "TogetherSocket"]

logger = logging.getLogger(__name__)

PATH = "/v1/audio/speech/websocket"
IDLE_GRACE_S = 2.0  # spoken out, no empty commit: the turn is taken as over after this long
_FORMATS = {"raw": "pcm", "pcm": "pcm", "pcm_s16le": "pcm", "ulaw": "ulaw", "mulaw": "ulaw"}


@dataclass
class _Item:
    id: str
    start: int  # its span in the stream's text
    end: int


@dataclass
class _Run:
    """A live stream carrying a run of committed items."""

    stream: LiveStream
    text: str = ""
    items: list[_Item] = field(default_factory=list)
    idle: bool = False
    closing: bool = False
    aborted: bool = False
    pump: asyncio.Task[None] | None = None

    def item_at(self, char: int) -> str:
        for item in reversed(self.items):
            if item.start <= char:
                return item.id
        return self.items[0].id if self.items else "tts_0"


class TogetherSocket:
    """One client's socket: see the module docstring."""

    def __init__(
        self, connection: Connection, gateway: SpeechGateway, scope: Scope, context: RequestContext
    ) -> None:
        self.connection, self.gateway, self.scope, self.request_context = connection, gateway, scope, context
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self.model = query.get("model", "hexgrad/Kokoro-82M")
        self.voice = query.get("voice", "af_heart")
        self.format = query.get("response_format", "raw")
        self.rate = query.get("sample_rate", "24000")
        self.words = query.get("alignment", "") == "word"
        self.session = f"session_{uuid.uuid4().hex}"
        self.buffer = ""
        self.run_: _Run | None = None
        self.turn_over = False  # an empty commit came after the last text
        self._items = 0
        self._grace: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            self._request()  # the model, voice and format, before anything else
            await self.connection.send(
                {
                    "event_id": uuid.uuid4().hex,
                    "type": "session.created",
                    "session": self._session(),
                }
            )
            while True:
                await self._handle(await self.connection.receive())
        except TTSError as exc:
            await self._error(exc.message, exc.code or "invalid_request_error")
            await self.connection.close(1008, exc.message)
        except PolicyViolation as exc:
            await self._error(str(exc), "policy_violation")
            await self.connection.close(exc.code, str(exc))
        except Closed:
            pass
        finally:
            await self._abort()

    def _session(self) -> dict[str, Any]:
        return {
            "id": self.session,
            "object": "realtime.tts.session",
            "modalities": ["text", "audio"],
            "model": self.model,
            "voice": self.voice,
        }

    def _request(self) -> SpeechRequest:
        """The live request the session's settings make; TTSError if the server cannot honour them."""
        if "kokoro" not in self.model.lower() and self.model not in MODEL_IDS:
            raise InvalidRequest(
                f"model {self.model!r} is not served here; use hexgrad/Kokoro-82M", param="model"
            )
        fmt = _FORMATS.get(self.format)
        if fmt is None:
            raise InvalidRequest(
                f"response_format {self.format!r} is not one this socket sends; use raw (16-bit PCM) or ulaw",
                param="response_format",
            )
        try:
            rate = int(self.rate)
        except ValueError:
            raise InvalidRequest(f"sample_rate {self.rate!r} is not a number", param="sample_rate") from None
        return live_request(self.request_context, voice=self.voice, output=OutputFormat(fmt, rate))

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "input_text_buffer.append":
            text = message.get("text")
            if not isinstance(text, str):
                raise PolicyViolation("`text` must be a string")
            self.connection.count_text(text)
            if self.buffer and text and not self.buffer[-1].isspace() and not text[0].isspace():
                text = " " + text  # pieces are sentences, sent without the space between them
            self.buffer += text
        elif kind == "input_text_buffer.commit":
            await self._commit()
        elif kind == "input_text_buffer.clear":
            self.buffer = ""
            await self._abort()
        elif kind == "tts_session.updated":
            session = message.get("session")
            voice = session.get("voice") if isinstance(session, dict) else None
            if isinstance(voice, str) and voice:
                previous, self.voice = self.voice, voice
                try:
                    self._request()
                except TTSError as exc:  # the session keeps its voice, and the socket stays up
                    self.voice = previous
                    await self._error(exc.message, exc.code or "invalid_request_error")
                    return
            await self.connection.send({"type": "session.updated", "session": self._session()})
        else:
            await self._error(f"unknown message type {kind!r}", "unknown_message_type")

    async def _commit(self) -> None:
        text, self.buffer = self.buffer, ""
        if not text.strip():
            self.turn_over = True  # Pipecat's end of a turn
            if self.run_ is not None and self.run_.idle:
                await self._done(self.run_)
            return
        self.turn_over = False
        self._items += 1
        item_id = f"tts_{self._items}"
        await self.connection.send(
            {"type": "conversation.item.input_text.received", "item_id": item_id, "text": text}
        )
        run = self.run_
        if run is None:
            try:
                stream = await self.gateway.open_live(self.scope, self._request(), Ticket.issue(live=True))
            except TTSError as exc:
                await self._failed(item_id, exc)
                return
            run = self.run_ = _Run(stream)
            run.pump = asyncio.create_task(self._pump(run), name="together stream")
        if run.text and not run.text[-1].isspace() and not text[0].isspace():
            text = " " + text
        run.items.append(_Item(item_id, len(run.text), len(run.text) + len(text)))
        run.text += text
        run.idle = False
        if not await run.stream.feed(text, flush=True):
            await self._failed(item_id, TTSError("the stream ended before this text could be spoken"))

    async def _done(self, run: _Run) -> None:
        """The run has spoken everything and the turn is over: say so, and end its stream."""
        if run.closing:
            return
        run.closing = True
        if self.run_ is run:
            self.run_ = None
        last = run.items[-1].id if run.items else "tts_0"
        await self.connection.send({"type": "conversation.item.audio_output.done", "item_id": last})
        await run.stream.feed("", end=True)

    async def _abort(self) -> None:
        run, self.run_ = self.run_, None
        if self._grace is not None:
            self._grace.cancel()
        if run is None:
            return
        run.aborted = True  # nothing of it goes out after this
        await stop(run.stream, run.pump)

    async def _pump(self, run: _Run) -> None:
        words: list[dict[str, Any]] = []
        try:
            while not run.aborted:
                event = await run.stream.next_event()
                if run.aborted:
                    return
                if isinstance(event, Words):
                    words += event.words
                elif isinstance(event, Audio):
                    item = run.item_at(words[0]["char_start"]) if words else run.item_at(len(run.text))
                    await self.connection.send(
                        {
                            "type": "conversation.item.audio_output.delta",
                            "item_id": item,
                            "delta": base64.b64encode(event.data).decode(),
                        }
                    )
                    if self.words and words:
                        await self._timestamps(item, words)
                    words = []
                elif isinstance(event, Idle):
                    run.idle = True
                    if self.turn_over:
                        await self._done(run)
                    else:
                        self._grace = asyncio.create_task(self._after_grace(run))
                elif isinstance(event, Failed):
                    await self._failed(run.items[-1].id if run.items else "tts_0", event.error)
                    if self.run_ is run:
                        self.run_ = None
                    await run.stream.aclose()
                    return
                elif isinstance(event, End):
                    await run.stream.aclose()
                    return
        except Closed:
            run.stream.cancel()

    async def _after_grace(self, run: _Run) -> None:
        await asyncio.sleep(IDLE_GRACE_S)
        if run.idle and not run.aborted:
            with contextlib.suppress(Closed):
                await self._done(run)

    async def _timestamps(self, item: str, words: list[dict[str, Any]]) -> None:
        await self.connection.send(
            {
                "type": "conversation.item.word_timestamps",
                "item_id": item,
                "words": [w["word"] for w in words],
                "start_seconds": [round(float(w["start"]), 3) for w in words],
                "end_seconds": [round(float(w["end"]), 3) for w in words],
            }
        )

    async def _failed(self, item_id: str, error: TTSError) -> None:
        logger.warning("together socket: %s", error.message)
        with contextlib.suppress(Closed):
            await self.connection.send(
                {
                    "type": "conversation.item.tts.failed",
                    "item_id": item_id,
                    "error": {"message": error.message, "code": error.code},
                }
            )

    async def _error(self, message: str, code: str) -> None:
        logger.warning("together socket: %s", message)
        with contextlib.suppress(Closed):
            await self.connection.send({"type": "error", "error": {"message": message, "code": code}})
