"""ElevenLabs' text-in socket, as Pipecat's ElevenLabsTTSService and LiveKit's elevenlabs.TTS speak it.

`/v1/text-to-speech/{voice}/multi-stream-input`: contexts, each its own live stream, on one socket;
`/v1/text-to-speech/{voice}/stream-input`: one stream, ended by an empty text. The clients' messages:
open a context (`{"text": " ", "context_id", "voice_settings"}`), text pieces, `flush` (speak what is here
now), `close_context` (the end of a turn after a bare flush; a barge-in otherwise: the audio stops at once),
keepalives (`{"text": ""}`), `close_socket`. The server's: audio with `alignment` and
`normalizedAlignment` (`chars`, `charStartTimesMs`, `charDurationsMs`) and the `contextId`; then
`{"isFinal": true, "contextId"}` alone (Pipecat drops the audio of a message that has it); errors as
`{"message", "error", "code", "contextId"?}`. Alignment times are per message, or from the context's
start with `sync_alignment=true` (LiveKit reads them so). With `auto_mode=true` (both clients' default) each
text message is a unit to speak at once; without it, text is cut where it is sure (text/live.py).
Settings with no Kokoro meaning (`model_id`, `stability`, `similarity_boost`, `enable_logging`, ...) are
accepted and ignored; `voice_settings.speed` is honoured.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import TTSError
from ...ipc.frames import Ticket
from ...schemas import SPEED_MAX, SPEED_MIN, RequestContext, SpeechRequest
from ..live import Audio, End, Failed, Idle, LiveStream, Words, stop
from .alignment import Aligner
from .connection import Closed, Connection, PolicyViolation
from .speech import live_request, output_format

if TYPE_CHECKING:
    from starlette.types import Scope

    from ..gateway import SpeechGateway

__all__ = ["PATH", "ElevenLabsSocket"]

logger = logging.getLogger(__name__)

PATH = re.compile(r"/v1/text-to-speech/(?P<voice>[^/]+)/(?P<kind>multi-stream-input|stream-input)")
DEFAULT_FORMAT = "mp3_44100_128"  # ElevenLabs' own default
SINGLE = "default"  # the one context of `stream-input`


@dataclass
class _Context:
    id: str
    stream: LiveStream
    aligner: Aligner
    text: str = ""  # as fed to the stream: word spans index into it
    last: str = "open"  # the last message that was not a keepalive: open, text, flush or close
    aborted: bool = False
    pump: asyncio.Task[None] | None = field(default=None, repr=False)


class ElevenLabsSocket:
    """One client's socket: see the module docstring."""

    def __init__(
        self, connection: Connection, gateway: SpeechGateway, scope: Scope, context: RequestContext
    ) -> None:
        self.connection, self.gateway, self.scope, self.request_context = connection, gateway, scope, context
        match = PATH.fullmatch(scope["path"])
        assert match is not None
        self.voice, self.multi = match["voice"], match["kind"] == "multi-stream-input"
        query = dict(_query(scope))
        self.output = query.get("output_format", DEFAULT_FORMAT)
        self.auto_mode = query.get("auto_mode", "false").lower() == "true"
        self.cumulative = query.get("sync_alignment", "false").lower() == "true"
        self.normalize = query.get("apply_text_normalization", "auto").lower() != "off"
        self.contexts: dict[str, _Context] = {}

    @staticmethod
    def inactivity_s(scope: Scope) -> float | None:
        """The inactivity timeout the client asks for (`inactivity_timeout`, seconds), if any."""
        value = dict(_query(scope)).get("inactivity_timeout")
        with contextlib.suppress(ValueError, TypeError):
            return float(value) if value else None
        return None

    async def run(self) -> None:
        """Serve the socket until the client closes it, asks to, or crosses a bound."""
        try:
            self._check(1.0)  # the voice and format, before any text
            while True:
                message = await self.connection.receive()
                if message.get("close_socket"):
                    await self._close_all()
                    await self.connection.close(1000)
                    return
                if not await self._handle(message):
                    return
        except TTSError as exc:
            await self._error(exc.message, exc.code or "invalid_request")
            await self.connection.close(1008, exc.message)
        except PolicyViolation as exc:
            await self._error(str(exc), "policy_violation")
            await self.connection.close(exc.code, str(exc))
        except Closed:
            pass
        finally:
            await self._close_all()

    async def _handle(self, message: dict[str, Any]) -> bool:
        """One message; False once the socket is done."""
        text = message.get("text")
        context_id = SINGLE if not self.multi else message.get("context_id", message.get("contextId"))
        if text is not None and not isinstance(text, str):
            raise PolicyViolation("`text` must be a string")
        if context_id is not None and not isinstance(context_id, str):
            raise PolicyViolation("`context_id` must be a string")
        if message.get("close_context") is True:
            if context_id is not None:
                await self._close_context(context_id)
            return True
        flush = message.get("flush") is True
        context = self.contexts.get(context_id or SINGLE)
        if context is None:
            # Opened by its first text, `{"text": " "}` included; a flush or a keepalive for a context that
            # is not open (closed a moment ago, say) changes nothing.
            if not text or (context_id is None and not text.strip()):
                return True
            context = await self._open(context_id or SINGLE, message)
            if context is None:
                return True
        if text:
            self.connection.count_text(text)
        if not self.multi and text == "" and context.last != "open":
            await self._finish(context)  # stream-input ends with an empty text
            return True
        await self._feed(context, text or "", flush)
        return True

    async def _open(self, context_id: str, message: dict[str, Any]) -> _Context | None:
        if len(self.contexts) >= self.connection.limits.max_contexts:
            await self._error(
                f"at most {self.connection.limits.max_contexts} contexts may be open on one socket",
                "max_active_conversations",
                context_id,
            )
            return None
        settings = message.get("voice_settings")
        speed = settings.get("speed", 1.0) if isinstance(settings, dict) else 1.0
        try:
            speech = self._check(float(speed) if isinstance(speed, int | float) else 1.0)
            stream = await self.gateway.open_live(self.scope, speech, Ticket.issue(live=True))
        except TTSError as exc:
            await self._error(exc.message, exc.code or "server_error", context_id)
            return None
        context = _Context(context_id, stream, Aligner(cumulative=self.cumulative))
        context.pump = asyncio.create_task(self._pump(context), name=f"elevenlabs context {context_id}")
        self.contexts[context_id] = context
        return context

    def _check(self, speed: float) -> SpeechRequest:
        """The live request the socket's settings make; TTSError if the server cannot honour them."""
        return live_request(
            self.request_context,
            voice=self.voice,
            output=output_format(self.output),
            speed=min(max(speed, SPEED_MIN), SPEED_MAX),
            normalize=self.normalize,
        )

    async def _feed(self, context: _Context, text: str, flush: bool) -> None:
        if context.last == "open" and not text.strip():
            text = ""  # the opening " ": nothing to say yet
        if self.auto_mode and text.strip():
            # Each message is a unit, spoken at once; units come without spaces between them (Pipecat's
            # sentences), while token by token (auto_mode off) the client's own spacing is kept.
            flush = True
            if context.text and not context.text[-1].isspace() and not text[0].isspace():
                text = " " + text
        if text:
            context.text += text
            context.last = "text" if text.strip() else context.last
        elif flush:
            context.last = "flush"
        else:
            return
        if not await context.stream.feed(text, flush=flush):
            await self._error("the context is over; open a new one", "context_closed", context.id)

    async def _close_context(self, context_id: str) -> None:
        """The end of a turn (after a bare flush: speak the rest, then isFinal) or a barge-in (stop now).

        Only a bare flush ends a turn: LiveKit in auto_mode sends every sentence with `flush` and, when the
        user interrupts, close_context right after one; words sent with a flush are a sentence, not the end.
        """
        context = self.contexts.get(context_id)
        if context is None:
            return  # unknown, or closed already: a no-op
        if context.last == "flush":
            await self._finish(context)
        else:
            await self._abort(context)

    async def _finish(self, context: _Context) -> None:
        context.last = "close"
        await context.stream.feed("", end=True)

    async def _abort(self, context: _Context) -> None:
        await self._stop(context)
        with contextlib.suppress(Closed):
            await self.connection.send({"isFinal": True, "contextId": context.id})

    async def _close_all(self) -> None:
        for context in list(self.contexts.values()):
            await self._stop(context)

    async def _stop(self, context: _Context) -> None:
        context.aborted = True  # no audio of it goes out after this
        self.contexts.pop(context.id, None)
        await stop(context.stream, context.pump)

    async def _pump(self, context: _Context) -> None:
        """Send a context's audio as it comes, each piece with the alignment of its words."""
        words: list[dict[str, Any]] = []
        try:
            while not context.aborted:
                event = await context.stream.next_event()
                if context.aborted:
                    return
                if isinstance(event, Words):
                    words += event.words
                elif isinstance(event, Audio):
                    await self._audio(context, event, words)
                    words = []
                elif isinstance(event, End | Failed):
                    if isinstance(event, Failed):
                        await self._error(event.error.message, event.error.code or "server_error", context.id)
                    self.contexts.pop(context.id, None)
                    await self.connection.send({"isFinal": True, "contextId": context.id})
                    await context.stream.aclose()
                    if not self.multi:
                        await self.connection.close(1000)
                    return
                elif isinstance(event, Idle):
                    continue
        except Closed:
            context.stream.cancel()

    async def _audio(self, context: _Context, audio: Audio, words: list[dict[str, Any]]) -> None:
        alignments = context.aligner.align(context.text, words, audio.start_s, audio.end_s)
        user, spoken = (a.to_dict() for a in alignments) if alignments is not None else (None, None)
        await self.connection.send(
            {
                "audio": base64.b64encode(audio.data).decode(),
                "isFinal": None,
                "alignment": user,
                "normalizedAlignment": spoken,
                "contextId": context.id,
            }
        )

    async def _error(self, message: str, code: str, context_id: str | None = None) -> None:
        logger.warning("elevenlabs socket: %s", message)
        error: dict[str, Any] = {"message": message, "error": code, "code": 1008}
        if context_id is not None:
            error["contextId"] = context_id
        with contextlib.suppress(Closed):
            await self.connection.send(error)


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope.get("query_string", b"").decode("latin-1"))
