"""Figure 12: voice agents. A reply streamed in over ElevenLabs' `multi-stream-input` socket at an LLM's pace,
against the same agent speaking each sentence over HTTP once it is complete.

One phase on the default server, nothing else in flight:
- replies: each sent word by word at WORDS_PER_S (`auto_mode=false`), a flush after each sentence, the
  turn closed after the last; first audio from the first text message, beside the HTTP agent's (its first
  sentence's words arriving at the same pace, then POST /v1/audio/speech, streamed pcm, for that sentence);
  its audio scored (DNSMOS, PocketSphinx) beside the same text asked whole;
- flush: a short phrase, then a flush, on a context opened before (and again once it has spoken); first
  audio after it, beside the HTTP route's for the phrase;
- barge-in: `close_context` mid-sentence, while the server speaks; audio of the context after the server's
  isFinal, the server tree's CPU seconds in the next window, and the next context's first audio on the same
  socket beside a fresh socket's;
- conversations: as many at once as 80 % of the worker's capacity feeds, each a three-sentence reply; first
  audio beside a lone conversation's, and the longest a player starting at the first audio runs dry.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .cancellation import cpu_timeline
from .client import PCM_BYTES_PER_SECOND, VOICE, Exchange, speak
from .engines import worker_capacity
from .listeners import longest_underrun_s
from .plan import Plan
from .processes import Service
from .quality import score_clip, whole_wav, words_of

__all__ = ["CAPACITY_SHARE", "WORDS_PER_S", "measure_agents", "sentences_of"]

WORDS_PER_S = 20.0  # an LLM's pace
SOCKET_PATH = "/v1/text-to-speech/{voice}/multi-stream-input"
# Token by token (auto_mode off: the server cuts where it is sure), raw 16-bit PCM at 24 kHz.
SOCKET_QUERY = "output_format=pcm_24000&auto_mode=false&inactivity_timeout=180"
CAPACITY_SHARE = 0.8  # of the worker's capacity, in conversations of ~1 audio s per s each
MIN_CONVERSATIONS = 2
SETTLE_S = 0.5  # a context opened this long before its text is "already open"
BARGE_IN_WORDS = 3  # words of a sentence out, not flushed, when the user cuts in
TURN_TIMEOUT_S = 300.0
SPOKEN_TIMEOUT_S = 60.0  # a phrase's audio, once its first audio came


def sentences_of(text: str) -> list[str]:
    """The text's sentences (the bench's replies have no abbreviations)."""
    return re.split(r"(?<=[.!?])\s+", text.strip())


@dataclass
class Turn:
    """One context as the agent heard it. Times are time.monotonic()."""

    context_id: str
    keep_audio: bool = False
    started_at: float | None = None  # its first message
    closed_at: float | None = None  # close_context sent
    final_at: float | None = None  # isFinal received
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (when, pcm bytes)
    after_final: int = 0  # audio messages that came after isFinal
    spoken: int = 0  # characters (not spaces) of its text that the audio's alignments covered
    pcm: bytearray = field(default_factory=bytearray)
    errors: list[str] = field(default_factory=list)
    heard: asyncio.Event = field(default_factory=asyncio.Event)  # set at each audio message and at the end
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def hear(self, at: float, pcm: bytes, chars: Sequence[str]) -> None:
        if self.final_at is not None:
            self.after_final += 1
        self.arrivals.append((at, len(pcm)))
        self.spoken += sum(not c.isspace() for c in chars)
        if self.keep_audio:
            self.pcm += pcm
        self.heard.set()

    def end(self, at: float | None, error: str | None = None) -> None:
        if at is not None and self.final_at is None:
            self.final_at = at
        if error is not None:
            self.errors.append(error)
        self.done.set()
        self.heard.set()

    def first_audio_after(self, at: float | None) -> float | None:
        """Seconds from `at` to the first audio that came at or after it."""
        if at is None:
            return None
        return next((t - at for t, _ in self.arrivals if t >= at), None)

    def audio_s_after(self, at: float | None) -> float:
        """Seconds of audio that came after `at`."""
        if at is None:
            return 0.0
        return sum(n for t, n in self.arrivals if t > at) / PCM_BYTES_PER_SECOND

    def player(self) -> list[tuple[float, float]]:
        """(seconds from the first message, audio seconds so far) per audio message."""
        start = self.started_at or 0.0
        received = 0
        played = []
        for t, n in self.arrivals:
            received += n
            played.append((t - start, received / PCM_BYTES_PER_SECOND))
        return played

    def audio(self) -> np.ndarray:
        return np.frombuffer(bytes(self.pcm), dtype="<i2").astype(np.float32) / 32768

    async def wait_audio(self, after: float) -> None:
        """Until audio came at or after `after` (or the context ended)."""
        await self._until(lambda: self.first_audio_after(after) is not None, "audio")

    async def wait_spoken(self, chars: int) -> None:
        """Until the audio's alignments covered `chars` characters (not spaces) of the text."""
        await self._until(lambda: self.spoken >= chars, f"{chars} characters spoken", SPOKEN_TIMEOUT_S)

    async def _until(
        self, condition: Callable[[], bool], what: str, timeout_s: float = TURN_TIMEOUT_S
    ) -> None:
        """Until `condition` holds or the context ended; an error after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition() and not self.done.is_set():
            self.heard.clear()
            try:
                await asyncio.wait_for(self.heard.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self.errors.append(f"not {what} within {timeout_s:.0f} s")
                return

    async def wait_done(self, timeout_s: float = TURN_TIMEOUT_S) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), timeout_s)
        except asyncio.TimeoutError:
            self.errors.append(f"no isFinal within {timeout_s:.0f} s")

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary, seconds from its first message."""
        start = self.started_at
        return {
            "first_audio_s": self.first_audio_after(start),
            "audio_s": sum(n for _, n in self.arrivals) / PCM_BYTES_PER_SECOND,
            "audio_messages": len(self.arrivals),
            "first_message_audio_s": self.arrivals[0][1] / PCM_BYTES_PER_SECOND if self.arrivals else None,
            "final_s": None if self.final_at is None or start is None else self.final_at - start,
            "longest_underrun_s": longest_underrun_s(self.player()),
            "errors": self.errors,
        }


class AgentSocket:
    """A multi-stream-input socket: contexts opened on it, their messages sent, their replies heard."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.turns: dict[str, Turn] = {}
        self.errors: list[str] = []  # messages for no context of ours
        self._ids = itertools.count()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> AgentSocket:
        address = "ws" + url.removeprefix("http") + SOCKET_PATH.format(voice=VOICE) + "?" + SOCKET_QUERY
        # What a Pipecat or LiveKit agent asks for, less the proxy: no limit on a message's size.
        return cls(await connect(address, max_size=None, ping_interval=None, proxy=None, open_timeout=60))

    def turn(self, *, keep_audio: bool = False) -> Turn:
        turn = Turn(f"turn-{next(self._ids)}", keep_audio)
        self.turns[turn.context_id] = turn
        return turn

    async def send(self, turn: Turn, message: dict[str, Any]) -> float:
        """Send a message of `turn`'s context; when it went."""
        now = time.monotonic()
        if turn.started_at is None:
            turn.started_at = now
        if message.get("close_context"):
            turn.closed_at = now
        await self.connection.send(json.dumps({**message, "context_id": turn.context_id}))
        return now

    async def close(self) -> None:
        await self.connection.close()
        await self._reader

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                now = time.monotonic()
                message = json.loads(raw)
                turn = self.turns.get(message.get("contextId"))
                if turn is None:
                    self.errors.append(str(message)[:300])
                elif message.get("audio"):
                    alignment = message.get("alignment") or {}
                    turn.hear(now, base64.b64decode(message["audio"]), alignment.get("chars") or ())
                elif message.get("isFinal"):
                    turn.end(now)
                elif "error" in message:
                    turn.errors.append(f"{message['error']}: {message.get('message')}")
        except ConnectionClosed as exc:
            self.errors.append(f"socket closed: {exc}")
        finally:
            for turn in self.turns.values():
                if not turn.done.is_set():
                    turn.end(None, "the socket closed before isFinal")


def schedule(sentences: Sequence[str], words_per_s: float) -> list[tuple[float, dict[str, Any]]]:
    """An agent's messages for a reply, each with when it goes (seconds): the opening " ", then a word at a
    time, and a flush right after each sentence's last word."""
    messages: list[tuple[float, dict[str, Any]]] = [(0.0, {"text": " "})]
    k = 0
    for sentence in sentences:
        for word in sentence.split():
            messages.append((k / words_per_s, {"text": word + " "}))
            k += 1
        messages.append(((k - 1) / words_per_s, {"text": "", "flush": True}))
    return messages


async def stream_reply(
    sock: AgentSocket, turn: Turn, sentences: Sequence[str], *, cut_after_words: int | None = None
) -> bool:
    """Send the reply at WORDS_PER_S and close the context after its last flush (the end of the turn). With
    `cut_after_words`, close it instead (a barge-in) once audio came and that many words of a sentence are
    out unflushed; True if it was cut. Where no audio came before the last sentence's words were all out (a
    machine slower than the text), its flush is held until audio comes, and then the reply is cut: closed
    after that flush, the context would end the turn and speak it all."""
    start = time.monotonic()
    unflushed = 0
    messages = schedule(sentences, WORDS_PER_S)
    for index, (at, message) in enumerate(messages):
        if cut_after_words is not None and unflushed >= cut_after_words:
            if index == len(messages) - 1 and not turn.arrivals:
                await turn.wait_audio(start)
            if turn.arrivals:
                await sock.send(turn, {"close_context": True})
                return True
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        await sock.send(turn, message)
        unflushed = 0 if message.get("flush") else unflushed + bool(message["text"].strip())
    await sock.send(turn, {"close_context": True})
    return False


async def say(sock: AgentSocket, phrase: str) -> Turn:
    """A new context with the phrase and a flush at once; closed (the end of the turn) after its audio."""
    turn = sock.turn()
    await sock.send(turn, {"text": " "})
    await sock.send(turn, {"text": phrase + " "})
    await sock.send(turn, {"text": "", "flush": True})
    assert turn.started_at is not None
    await turn.wait_audio(turn.started_at)
    await sock.send(turn, {"close_context": True})
    await turn.wait_done()
    return turn


def _error(exchange: Exchange) -> str | None:
    """What went wrong with an HTTP request, even one left after its first bytes (an error body's)."""
    if exchange.error is None and exchange.status != 200:
        return f"HTTP {exchange.status}"
    return exchange.error


async def _wait_idle(server: Service) -> None:
    await asyncio.to_thread(server.wait_idle)


async def _reply(server: Service, index: int, text: str) -> dict[str, Any]:
    """One reply streamed in, its first sentence over HTTP, and the whole text asked at once."""
    sentences = sentences_of(text)
    first_words = len(sentences[0].split())
    await _wait_idle(server)
    http = await asyncio.to_thread(speak, server.url, sentences[0], "pcm", abandon="after_first_audio")
    await _wait_idle(server)
    sock = await AgentSocket.open(server.url)
    turn = sock.turn(keep_audio=True)
    await stream_reply(sock, turn, sentences)
    await turn.wait_done()
    await sock.close()
    await _wait_idle(server)
    whole = await asyncio.to_thread(whole_wav, server, text, index)
    return {
        "sentences": len(sentences),
        "first_sentence_words": first_words,
        "chars": len(text),
        # The HTTP agent waits for the sentence's last word: (words - 1) / pace after the first.
        "wait_s": (first_words - 1) / WORDS_PER_S,
        "http_first_audio_s": http.first_audio_s,
        "http_error": _error(http),
        "streamed": turn.record(),
        "socket_errors": sock.errors,
        "_audio": {"streamed": turn.audio(), "whole": whole},
    }


async def _flushes(server: Service, phrase: str) -> dict[str, Any]:
    """The phrase over HTTP; then on a context opened SETTLE_S before, and again once that one has spoken."""
    await _wait_idle(server)
    http = await asyncio.to_thread(speak, server.url, phrase, "pcm")
    await _wait_idle(server)
    sock = await AgentSocket.open(server.url)
    turn = sock.turn()
    await sock.send(turn, {"text": " "})
    await asyncio.sleep(SETTLE_S)
    firsts = []
    for times in (1, 2):  # the phrase said once, twice
        sent = await sock.send(turn, {"text": phrase + " "})
        await sock.send(turn, {"text": "", "flush": True})
        await turn.wait_audio(sent)
        firsts.append(turn.first_audio_after(sent))
        await turn.wait_spoken(times * sum(not c.isspace() for c in phrase))
    await sock.send(turn, {"close_context": True})
    await turn.wait_done()
    await sock.close()
    return {
        "http_first_audio_s": http.first_audio_s,
        "http_error": _error(http),
        "opened_first_audio_s": firsts[0],
        "spoken_first_audio_s": firsts[1],
        "errors": turn.errors + sock.errors,
    }


async def _barge_in(server: Service, text: str, phrase: str, window_s: float) -> dict[str, Any]:
    """A fresh socket's first audio for the phrase; then a reply cut mid-sentence, the server's CPU after
    it, and the phrase on a new context of the same socket."""
    await _wait_idle(server)
    fresh_sock = await AgentSocket.open(server.url)
    fresh = await say(fresh_sock, phrase)
    await fresh_sock.close()
    await _wait_idle(server)
    sock = await AgentSocket.open(server.url)
    turn = sock.turn()
    cut = await stream_reply(sock, turn, sentences_of(text), cut_after_words=BARGE_IN_WORDS)
    timeline = await asyncio.to_thread(cpu_timeline, server, window_s)
    if turn.final_at is None:
        turn.errors.append(f"no isFinal within {window_s:.0f} s of close_context")
    following = await say(sock, phrase)
    await sock.close()
    start, closed = turn.started_at or 0.0, turn.closed_at
    return {
        "cut": cut,
        "cut_at_s": None if closed is None else closed - start,
        "audio_before_cut_s": sum(n for t, n in turn.arrivals if closed is None or t <= closed)
        / PCM_BYTES_PER_SECOND,
        # In flight when the server read the close (sent before it), or a bug if after its isFinal.
        "audio_after_close_s": turn.audio_s_after(closed),
        "audio_messages_after_final": turn.after_final,
        "final_after_close_s": None if turn.final_at is None or closed is None else turn.final_at - closed,
        "cpu_s": timeline[-1][1],
        "window_s": timeline[-1][0],
        "cpu_timeline": timeline,
        "fresh_first_audio_s": fresh.first_audio_after(fresh.started_at),
        "next_first_audio_s": following.first_audio_after(following.started_at),
        "errors": turn.errors + fresh.errors + following.errors + sock.errors + fresh_sock.errors,
    }


async def _conversations(server: Service, texts: Sequence[str]) -> list[dict[str, Any]]:
    """Each text a conversation of its own socket, all starting at the same moment."""
    await _wait_idle(server)
    socks = [await AgentSocket.open(server.url) for _ in texts]
    start = time.monotonic() + 0.2

    async def one(sock: AgentSocket, text: str) -> Turn:
        turn = sock.turn()
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        await stream_reply(sock, turn, sentences_of(text))
        await turn.wait_done()
        return turn

    turns = await asyncio.gather(*(one(sock, text) for sock, text in zip(socks, texts, strict=True)))
    for sock in socks:
        await sock.close()
    return [
        {"chars": len(text), **turn.record(), "errors": turn.errors + sock.errors}
        for text, turn, sock in zip(texts, turns, socks, strict=True)
    ]


async def _measure(server: Service, plan: Plan) -> dict[str, Any]:
    wall: dict[str, float] = {}
    started = time.monotonic()
    replies = [await _reply(server, i, text) for i, text in enumerate(plan.agent_replies)]
    wall["replies"], started = time.monotonic() - started, time.monotonic()
    flushes = [await _flushes(server, plan.agent_phrase) for _ in range(plan.agent_flush_reps)]
    wall["flushes"], started = time.monotonic() - started, time.monotonic()
    barge_ins = [
        await _barge_in(server, plan.agent_barge_in, plan.agent_phrase, plan.cancel_window_s)
        for _ in range(plan.agent_barge_in_trials)
    ]
    wall["barge_ins"], started = time.monotonic() - started, time.monotonic()
    capacity = await asyncio.to_thread(worker_capacity, server)
    wanted = max(MIN_CONVERSATIONS, math.floor(CAPACITY_SHARE * (capacity or 0.0)))
    n = min(wanted, plan.agent_max_conversations)
    texts = list(itertools.islice(itertools.cycle(plan.agent_conversation_texts), n))
    lone = {text: (await _conversations(server, [text]))[0] for text in dict.fromkeys(texts)}
    together = await _conversations(server, texts)
    await _wait_idle(server)
    wall["conversations"] = time.monotonic() - started
    return {
        "words_per_s": WORDS_PER_S,
        "replies": replies,
        "flushes": flushes,
        "barge_ins": barge_ins,
        "conversations": {
            "capacity": capacity,
            "wanted": wanted,
            "conversations": n,
            "lone": [{"text_index": i, **lone[text]} for i, text in enumerate(lone)],
            "together": [
                {"text_index": texts.index(text), **c} for text, c in zip(texts, together, strict=True)
            ],
        },
        "wall_s": wall,
    }


def measure_agents(server: Service, plan: Plan) -> dict[str, Any]:
    """Raw samples of figure 12 on an idle server; each reply's audio scored once all were heard."""
    raw = asyncio.run(_measure(server, plan))
    started = time.monotonic()
    for reply, text in zip(raw["replies"], plan.agent_replies, strict=True):
        audio = reply.pop("_audio")
        expected = " ".join(words_of(text))
        reply["scores"] = {
            "streamed": score_clip(audio["streamed"], expected) if len(audio["streamed"]) else None,
            "whole": score_clip(audio["whole"], expected),
        }
    raw["wall_s"]["scoring"] = time.monotonic() - started
    return raw
