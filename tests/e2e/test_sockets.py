"""The voice-agent sockets' own protocols through real servers, driven by a raw WebSocket client: ElevenLabs'
`multi-stream-input` and `stream-input`, Together's `/v1/audio/speech/websocket`.

- keys: refused at the upgrade (403) without one; each protocol's own way of sending it is accepted;
- ElevenLabs: contexts on one socket each get their own audio at the asked rate and their own character
  timings; `isFinal` alone after the audio; a barge-in (`close_context` with no bare flush before it)
  stops the audio at once and cancels the synthesis; `stream-input` ends with an empty text;
- every bound (contexts, message size and rate, inactivity, text per socket, `--max-pending`) answers with
  the protocol's own error and, where it ends the socket, the close code it documents;
- Together: the session, items, deltas, word timestamps, `done` after the turn, a clear that stops it all;
- a client that drops the connection anywhere leaves nothing held; a fuzzer's message sequences get only
  documented replies and leave the server idle and healthy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.rawclient import metrics, wait_for
from tests.servers import shared_server
from tts_api.processes import ServerProcess

pytestmark = pytest.mark.server

KEY = "socket-test-key"
MAX_CONTEXTS = 2
MAX_CHARS = 1000
MAX_MESSAGES_PER_S = 20  # bursts of 40 pass
PACED_INACTIVITY_S = 4
PACED_MAX_INACTIVITY_S = 8  # what a client may ask for, and a Together socket's bound
BOARD = "tts_cancel_board_entries"
ENCODERS = "tts_open_encoders"
CANCELLED = "tts_requests_cancelled_total"
WAIT_S = 30.0  # the longest any reply may take on a loaded machine
INACTIVITY_S = 30  # the fuzzed sockets' inactivity timeout
MiB = 1024 * 1024
LONG = " ".join(["This reply goes on for a long while, so that it is still speaking when it is cut."] * 4)

# The tiny model with a key and small socket bounds.
keyed_socket_server = shared_server(
    "keyed_socket_server",
    "--api-key",
    KEY,
    env={
        "TTS_SOCKET_MAX_CONTEXTS": str(MAX_CONTEXTS),
        "TTS_SOCKET_MAX_CHARS": str(MAX_CHARS),
        "TTS_SOCKET_MAX_MESSAGES_PER_S": str(MAX_MESSAGES_PER_S),
    },
)
# Synthesis at real time (the emulated engine sleeps as long as the audio it makes lasts): a long text is
# still being made seconds after its first audio, so a cut is a cut. Two places in all.
paced_socket_server = shared_server(
    "paced_socket_server",
    "--engine",
    "emulated:1",
    "--max-pending",
    "2",
    "--api-key",
    KEY,
    env={
        "TTS_SOCKET_INACTIVITY_S": str(PACED_INACTIVITY_S),
        "TTS_SOCKET_MAX_INACTIVITY_S": str(PACED_MAX_INACTIVITY_S),
    },
)


# ---- the raw client ----------------------------------------------------------------------------------


def elevenlabs_url(
    server: ServerProcess, voice: str = "af_heart", kind: str = "multi-stream-input", **query: str
) -> str:
    query = {"output_format": "pcm_24000", **query}
    return f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{voice}/{kind}?{urlencode(query)}"


def together_url(server: ServerProcess, **query: str) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/audio/speech/websocket?{urlencode(query)}"


def open_socket(url: str, headers: dict[str, str] | None = None) -> Any:
    """`async with open_socket(url) as ws`: a client with the key in ElevenLabs' header by default."""
    return connect(
        url, additional_headers={"xi-api-key": KEY} if headers is None else headers, max_size=16 * MiB
    )


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def send_all(ws: ClientConnection, messages: list[Any]) -> None:
    """Send each (a dict as JSON, a str as it is), until the server closes the socket."""
    with contextlib.suppress(ConnectionClosed):
        for message in messages:
            await ws.send(message if isinstance(message, str) else json.dumps(message))


async def receive(ws: ClientConnection, timeout: float = WAIT_S) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def receive_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S
) -> list[dict[str, Any]]:
    """Messages up to and including the first that is `done`."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not messages or not done(messages[-1]):
        messages.append(await receive(ws, max(0.1, deadline - time.monotonic())))
    return messages


async def receive_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """What arrives within `seconds`."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            messages.append(await receive(ws, left))
        except TimeoutError:
            break
    return messages


async def receive_to_close(ws: ClientConnection, timeout: float = WAIT_S) -> tuple[list[dict[str, Any]], int]:
    """Everything until the server closes the socket, and the close code."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            messages.append(await receive(ws, max(0.1, deadline - time.monotonic())))
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server dropped the connection without a close frame"
        return messages, closed.rcvd.code


def is_final(context_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("isFinal") is True and m.get("contextId") == context_id


def audio_of(messages: list[dict[str, Any]], context_id: str) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("audio") and m.get("contextId") == context_id]


def pcm_ms(data: bytes, rate: int) -> float:
    return len(data) / 2 / rate * 1000


def words_of(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in text.split()]


def check_alignment(alignment: dict[str, Any], audio_ms: float | None) -> None:
    """One message's character timings: aligned lists, monotone, and (per message) within its audio."""
    chars, starts, durations = alignment["chars"], alignment["charStartTimesMs"], alignment["charDurationsMs"]
    assert len(chars) == len(starts) == len(durations) > 0, alignment
    assert all(isinstance(c, str) and len(c) == 1 for c in chars), chars
    assert starts == sorted(starts) and starts[0] >= 0, starts
    assert all(d >= 0 for d in durations), durations
    if audio_ms is not None:
        assert max(s + d for s, d in zip(starts, durations, strict=True)) <= audio_ms + 1, (
            alignment,
            audio_ms,
        )


def idle(server: ServerProcess) -> float:
    """Wait until no stream holds a place; the cancelled count then."""
    wait_for(lambda: metrics(server.url)[BOARD] == 0, WAIT_S, "an idle server")
    return metrics(server.url)[CANCELLED]


def nothing_left(server: ServerProcess) -> None:
    """No place held, no encoder open, the server healthy."""
    wait_for(lambda: metrics(server.url)[BOARD] == 0, WAIT_S, "every place given back")
    wait_for(lambda: metrics(server.url)[ENCODERS] == 0, WAIT_S, "every encoder closed")
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def run(scenario: Any) -> Any:
    return asyncio.run(scenario)


# ---- keys --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("elevenlabs", {}, {}),
        ("elevenlabs", {}, {"xi-api-key": "wrong"}),
        ("elevenlabs", {"api_key": "wrong"}, {}),
        ("together", {}, {}),
        ("together", {}, {"Authorization": "Bearer wrong"}),
        ("together", {}, {"xi-api-key": ""}),
    ],
    ids=["el-none", "el-wrong-header", "el-wrong-query", "tg-none", "tg-wrong-bearer", "tg-empty"],
)
def test_a_socket_without_the_right_key_is_refused_at_the_upgrade(
    keyed_socket_server: ServerProcess, path: str, query: dict[str, str], headers: dict[str, str]
) -> None:
    url = (
        elevenlabs_url(keyed_socket_server, **query)
        if path == "elevenlabs"
        else together_url(keyed_socket_server, **query)
    )

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with open_socket(url, headers):
                pass
        assert refused.value.response.status_code == 403

    run(scenario())


@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("elevenlabs", {}, {"xi-api-key": KEY}),
        ("elevenlabs", {}, {"Authorization": f"Bearer {KEY}"}),
        ("elevenlabs", {"api_key": KEY}, {}),
        ("together", {}, {"Authorization": f"Bearer {KEY}"}),
        ("together", {"api_key": KEY}, {}),
    ],
    ids=["el-xi-api-key", "el-bearer", "el-query", "tg-bearer", "tg-query"],
)
def test_each_protocols_way_of_sending_the_key_is_accepted(
    keyed_socket_server: ServerProcess, path: str, query: dict[str, str], headers: dict[str, str]
) -> None:
    async def scenario() -> None:
        if path == "elevenlabs":
            async with open_socket(elevenlabs_url(keyed_socket_server, **query), headers) as ws:
                await send(ws, close_socket=True)
                assert await receive_to_close(ws) == ([], 1000)
        else:
            async with open_socket(together_url(keyed_socket_server, **query), headers) as ws:
                assert (await receive(ws))["type"] == "session.created"

    run(scenario())


# ---- ElevenLabs: contexts, audio, timings ------------------------------------------------------------

TEXTS = {"a": ["Hello there, ", "my friend."], "b": ["One, two, three, ", "four, five, six, seven."]}


async def two_contexts(server: ServerProcess, output_format: str) -> dict[str, list[dict[str, Any]]]:
    """Contexts a and b on one socket, each text in pieces (auto_mode off: the client's spacing), then a
    bare flush and close_context: every message each got, then the socket closed with close_socket."""
    url = elevenlabs_url(server, output_format=output_format, auto_mode="false")
    async with open_socket(url) as ws:
        for context_id, pieces in TEXTS.items():
            await send(ws, text=" ", context_id=context_id, voice_settings={"stability": 0.5})
            for piece in pieces:
                await send(ws, text=piece, context_id=context_id)
        for context_id in TEXTS:
            await send(ws, context_id=context_id, flush=True)  # no `text` key, as Pipecat sends it
            await send(ws, context_id=context_id, close_context=True)
        messages = await receive_until(ws, is_final("a"))
        if not any(is_final("b")(m) for m in messages):
            messages += await receive_until(ws, is_final("b"))
        await send(ws, close_socket=True)
        rest, code = await receive_to_close(ws)
    assert code == 1000
    assert not rest, rest  # nothing of a context after its isFinal
    return {c: [m for m in messages if m.get("contextId") == c] for c in TEXTS}


def test_two_contexts_on_one_socket_each_get_their_own_audio_and_timings_then_isfinal_alone(
    keyed_socket_server: ServerProcess,
) -> None:
    by_rate = {rate: run(two_contexts(keyed_socket_server, f"pcm_{rate}")) for rate in (16_000, 24_000)}
    for rate, contexts in by_rate.items():
        for context_id, messages in contexts.items():
            *audio, final = messages
            assert final == {"isFinal": True, "contextId": context_id}  # alone: Pipecat drops audio beside it
            assert audio and all(
                set(m) == {"audio", "isFinal", "alignment", "normalizedAlignment", "contextId"} for m in audio
            )
            assert all(m["isFinal"] is None for m in audio)
            chars = ""
            for message in audio:
                data = base64.b64decode(message["audio"])
                assert len(data) % 2 == 0
                if message["alignment"] is not None:
                    check_alignment(message["alignment"], pcm_ms(data, rate))
                    check_alignment(message["normalizedAlignment"], pcm_ms(data, rate))
                    chars += "".join(message["alignment"]["chars"])
            assert chars.split() == "".join(TEXTS[context_id]).split(), (rate, chars)
    size = {
        (rate, c): sum(len(base64.b64decode(m["audio"])) for m in audio_of(messages, c))
        for rate, contexts in by_rate.items()
        for c, messages in contexts.items()
    }
    for context_id in TEXTS:  # the same speech at either rate: 2/3 of the bytes at 16 kHz
        assert 0.6 <= size[16_000, context_id] / size[24_000, context_id] <= 0.73, size
    assert size[24_000, "b"] > size[24_000, "a"]  # the longer text is the longer audio: not swapped


def test_sync_alignment_times_run_from_the_start_of_the_context(keyed_socket_server: ServerProcess) -> None:
    """LiveKit's `sync_alignment=true`: one clock for the context, across its messages."""

    async def scenario() -> list[dict[str, Any]]:
        url = elevenlabs_url(keyed_socket_server, sync_alignment="true", auto_mode="true")
        async with open_socket(url) as ws:
            await send(ws, text=" ", context_id="c")
            await send(ws, text="Hello there.", context_id="c")
            first = await receive_until(ws, lambda m: bool(m.get("audio")))
            await send(ws, text="How are you today?", context_id="c")  # a unit of its own (auto_mode)
            await send(ws, text="", context_id="c", flush=True)  # LiveKit's end of input
            await send(ws, context_id="c", close_context=True)
            return first + await receive_until(ws, is_final("c"))

    messages = run(scenario())
    offset_ms, aligned, starts = 0.0, 0, []
    for message in audio_of(messages, "c"):
        audio_ms = pcm_ms(base64.b64decode(message["audio"]), 24_000)
        if message["alignment"] is not None:
            check_alignment(message["alignment"], offset_ms + audio_ms)
            # from the context's start: within this message's stretch of the context's audio
            assert min(message["alignment"]["charStartTimesMs"]) >= offset_ms - 5, (offset_ms, message)
            starts += message["alignment"]["charStartTimesMs"]
            aligned += 1
        offset_ms += audio_ms
    assert aligned >= 2 and starts == sorted(starts), messages
    chars = "".join(c for m in audio_of(messages, "c") if m["alignment"] for c in m["alignment"]["chars"])
    assert chars.split() == "Hello there. How are you today?".split()


def test_a_barge_in_stops_the_contexts_audio_at_once_and_cancels_its_synthesis(
    paced_socket_server: ServerProcess,
) -> None:
    """`close_context` after text (no bare flush): no audio of the context after it, an isFinal, the
    synthesis cancelled and its place given back; the socket speaks on."""
    server = paced_socket_server
    before = idle(server)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with open_socket(elevenlabs_url(server, inactivity_timeout="60")) as ws:
            await send(ws, text=" ", context_id="cut")
            await send(ws, text=LONG, context_id="cut", flush=True)
            await receive_until(ws, lambda m: bool(m.get("audio")))  # it is speaking
            await send(ws, context_id="cut", close_context=True)
            after = await receive_until(ws, is_final("cut"))
            await send(ws, text="Still here.", context_id="next")
            await send(ws, context_id="next", flush=True)
            await send(ws, context_id="next", close_context=True)
            after += await receive_until(ws, is_final("next"))
            return after, await receive_for(ws, 1.0)

    after, trailing = run(scenario())
    assert not audio_of(after + trailing, "cut"), "audio of the context after its close_context"
    assert audio_of(after, "next")  # the socket still works
    wait_for(lambda: metrics(server.url)[CANCELLED] > before, WAIT_S, "the cut synthesis counted cancelled")
    nothing_left(server)


def test_stream_input_speaks_its_pieces_then_isfinal_then_closes_with_1000(
    keyed_socket_server: ServerProcess,
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int]:
        url = elevenlabs_url(keyed_socket_server, kind="stream-input", output_format="pcm_16000")
        async with open_socket(url) as ws:
            await send(ws, text=" ")
            await send(ws, text="")  # a keepalive: it does not end the stream before any text
            await send(ws, text="Hello there. ")
            await send(ws, text="How are you?", flush=True)
            await send(ws, text="")
            return await receive_to_close(ws)

    messages, code = run(scenario())
    assert code == 1000
    *audio, final = messages
    assert final.get("isFinal") is True and set(final) <= {"isFinal", "contextId"}
    assert audio and all(m.get("audio") and m["isFinal"] is None for m in audio)
    chars = "".join(c for m in audio if m["alignment"] for c in m["alignment"]["chars"])
    assert chars.split() == "Hello there. How are you?".split()


# ---- ElevenLabs: errors and bounds -------------------------------------------------------------------


def check_error(message: dict[str, Any], context_id: str | None = None) -> None:
    """ElevenLabs' error shape."""
    expected = {"message", "error", "code"} | ({"contextId"} if context_id is not None else set())
    assert set(message) == expected, message
    assert isinstance(message["message"], str) and message["message"]
    assert isinstance(message["error"], str) and message["error"]
    assert isinstance(message["code"], int)
    assert message.get("contextId") == context_id


@pytest.mark.parametrize(
    ("voice", "output_format", "says"),
    [
        ("zz_nope", "pcm_24000", "zz_nope"),
        ("af_heart", "wav_44100", "wav_44100"),
        ("af_heart", "pcm_1234", "1234"),
        ("af_heart", "pcm_24000_64", "pcm_24000_64"),
    ],
    ids=["unknown-voice", "unknown-format", "unknown-rate", "bit-rate-of-pcm"],
)
def test_settings_the_server_cannot_honour_are_an_error_then_a_1008_close(
    keyed_socket_server: ServerProcess, voice: str, output_format: str, says: str
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(elevenlabs_url(keyed_socket_server, voice, output_format=output_format)) as ws:
            return await receive_to_close(ws)

    (error, *rest), code = run(scenario())
    check_error(error)
    assert says in error["message"] and not rest and code == 1008


def test_a_context_over_the_bound_is_refused_alone_and_the_others_still_speak(
    keyed_socket_server: ServerProcess,
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with open_socket(elevenlabs_url(keyed_socket_server, auto_mode="true")) as ws:
            for context_id in ("a", "b", "c"):
                await send(ws, text=" ", context_id=context_id)
            refused = await receive(ws)
            check_error(refused, "c")
            assert str(MAX_CONTEXTS) in refused["message"]
            for context_id in ("a", "b"):
                await send(ws, text="Still here.", context_id=context_id)
                await send(ws, text="", context_id=context_id, flush=True)
                await send(ws, context_id=context_id, close_context=True)
            messages = await receive_until(ws, is_final("a"))
            if not any(is_final("b")(m) for m in messages):
                messages += await receive_until(ws, is_final("b"))
            return messages

    messages = run(scenario())
    assert audio_of(messages, "a") and audio_of(messages, "b")
    assert not [m for m in messages if m.get("contextId") == "c"]


@pytest.mark.parametrize("size", [64 * 1024 + 1, 256 * 1024], ids=["just-over", "far-over"])
def test_a_message_over_the_size_bound_closes_the_socket_with_1009(
    keyed_socket_server: ServerProcess, size: int
) -> None:
    """Just over the bound: the protocol's error first; far over it, uvicorn cuts it before reading it."""

    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(elevenlabs_url(keyed_socket_server)) as ws:
            await send(ws, text="a" * size, context_id="big")
            return await receive_to_close(ws)

    messages, code = run(scenario())
    assert code == 1009 and not [m for m in messages if m.get("audio")]
    if size < 128 * 1024:
        (error,) = messages
        check_error(error)
        assert "larger than" in error["message"]


def test_too_many_messages_a_second_are_an_error_then_a_1008_close(
    keyed_socket_server: ServerProcess,
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(elevenlabs_url(keyed_socket_server)) as ws:
            await send_all(ws, [{"text": ""}] * (5 * MAX_MESSAGES_PER_S))
            return await receive_to_close(ws)

    (error, *rest), code = run(scenario())
    check_error(error)
    assert "messages a second" in error["message"] and not rest and code == 1008


def test_a_silent_client_is_an_error_then_a_1008_close_after_its_inactivity_timeout(
    keyed_socket_server: ServerProcess,
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int, float]:
        async with open_socket(elevenlabs_url(keyed_socket_server, inactivity_timeout="1")) as ws:
            await send(ws, text="")  # the clock runs from the last message
            started = time.monotonic()
            messages, code = await receive_to_close(ws)
            return messages, code, time.monotonic() - started

    (error, *rest), code, waited_s = run(scenario())
    check_error(error)
    assert "inactivity" in error["message"] and not rest and code == 1008
    assert 0.9 <= waited_s < 15


def test_text_over_the_sockets_bound_is_an_error_then_a_1008_close(
    keyed_socket_server: ServerProcess,
) -> None:
    piece = "Some words to say. " * 15  # 285 characters

    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(elevenlabs_url(keyed_socket_server, auto_mode="false")) as ws:
            await send(ws, text=" ", context_id="c")
            await send_all(ws, [{"text": piece, "context_id": "c"}] * (MAX_CHARS // len(piece) + 1))
            return await receive_to_close(ws)

    messages, code = run(scenario())
    errors = [m for m in messages if "error" in m]
    assert len(errors) == 1 and code == 1008
    check_error(errors[0])
    assert str(MAX_CHARS) in errors[0]["message"]


@pytest.mark.parametrize("raw", ["hello", "[1, 2]", '"text"', "{"], ids=["text", "list", "string", "cut"])
def test_a_message_that_is_not_a_json_object_is_an_error_then_a_1008_close(
    keyed_socket_server: ServerProcess, raw: str
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(elevenlabs_url(keyed_socket_server)) as ws:
            await ws.send(raw)
            return await receive_to_close(ws)

    (error, *rest), code = run(scenario())
    check_error(error)
    assert "JSON" in error["message"] and not rest and code == 1008


def test_max_pending_counts_contexts_and_a_closed_one_makes_room(paced_socket_server: ServerProcess) -> None:
    """`--max-pending 2`: two open contexts hold both places (from their opening " ", before any text); a
    third, on another socket or protocol, is refused; once one closes, it is admitted."""
    server = paced_socket_server
    idle(server)
    url = elevenlabs_url(server, inactivity_timeout="60", auto_mode="false")

    async def scenario() -> list[dict[str, Any]]:
        async with open_socket(url) as holder, open_socket(url) as newcomer:
            await send(holder, text=" ", context_id="a1")
            await send(holder, text=" ", context_id="a2")
            await asyncio.to_thread(
                wait_for, lambda: metrics(server.url)[BOARD] == 2, WAIT_S, "two places held"
            )
            await send(newcomer, text=" ", context_id="b1")
            busy = await receive(newcomer)
            check_error(busy, "b1")
            assert busy["error"] == "server_overloaded" and "busy" in busy["message"]
            async with open_socket(together_url(server), {"Authorization": f"Bearer {KEY}"}) as together:
                await receive(together)  # session.created
                await send(together, type="input_text_buffer.append", text="Me too.")
                await send(together, type="input_text_buffer.commit")
                received, failed = await receive(together), await receive(together)
                assert received["type"] == "conversation.item.input_text.received"
                assert (
                    failed["type"] == "conversation.item.tts.failed"
                    and failed["item_id"] == received["item_id"]
                )
                assert failed["error"]["code"] == "server_overloaded"
            await send(holder, context_id="a1", close_context=True)
            assert await receive(holder) == {"isFinal": True, "contextId": "a1"}
            await asyncio.to_thread(wait_for, lambda: metrics(server.url)[BOARD] == 1, WAIT_S, "a place back")
            await send(newcomer, text=" ", context_id="b1")
            await send(newcomer, text="Now me.", context_id="b1")
            await send(newcomer, context_id="b1", flush=True)
            await send(newcomer, context_id="b1", close_context=True)
            return await receive_until(newcomer, is_final("b1"))

    messages = run(scenario())
    assert audio_of(messages, "b1") and not [m for m in messages if "error" in m]
    nothing_left(server)


# ---- Together ----------------------------------------------------------------------------------------

BEARER = {"Authorization": f"Bearer {KEY}"}


def test_together_speaks_committed_items_with_word_timestamps_and_is_done_after_an_empty_commit(
    keyed_socket_server: ServerProcess,
) -> None:
    items = ["Hello there, my friend.", "How are you today?"]

    async def scenario() -> list[dict[str, Any]]:
        url = together_url(keyed_socket_server, voice="af_bella", alignment="word", language="en")
        async with open_socket(url, BEARER) as ws:
            created = await receive(ws)
            assert created["type"] == "session.created"
            assert created["session"]["voice"] == "af_bella" and created["session"]["id"]
            await send(ws, type="input_text_buffer.append", text="Hello there,")
            await send(ws, type="input_text_buffer.append", text=" my friend.")
            await send(ws, type="input_text_buffer.commit")
            await send(ws, type="input_text_buffer.append", text=items[1])
            await send(ws, type="input_text_buffer.commit")
            await send(ws, type="input_text_buffer.commit")  # the end of the turn (Pipecat)
            messages = await receive_until(ws, lambda m: m["type"] == "conversation.item.audio_output.done")
            return messages + await receive_for(ws, 0.5)

    messages = run(scenario())
    received = [m for m in messages if m["type"] == "conversation.item.input_text.received"]
    assert [m["text"] for m in received] == items
    ids = [m["item_id"] for m in received]
    assert len(set(ids)) == 2 and all(ids)
    deltas = [m for m in messages if m["type"] == "conversation.item.audio_output.delta"]
    pcm = b"".join(base64.b64decode(m["delta"]) for m in deltas)
    assert deltas and len(pcm) % 2 == 0 and all(m["item_id"] in ids for m in deltas)
    stamps = [m for m in messages if m["type"] == "conversation.item.word_timestamps"]
    words = [w for m in stamps for w in m["words"]]
    assert words_of(" ".join(words)) == words_of(" ".join(items))
    starts = [s for m in stamps for s in m["start_seconds"]]
    ends = [e for m in stamps for e in m["end_seconds"]]
    assert len(starts) == len(ends) == len(words) and starts == sorted(starts)
    assert all(s <= e for s, e in zip(starts, ends, strict=True)) and ends[-1] <= len(pcm) / 48_000 + 0.05
    done = [k for k, m in enumerate(messages) if m["type"] == "conversation.item.audio_output.done"]
    assert done == [len(messages) - 1], messages[-3:]  # one, once all is spoken, and nothing after it
    assert messages[-1]["item_id"] == ids[-1]


def test_a_together_clear_stops_the_deltas_and_cancels_the_synthesis(
    paced_socket_server: ServerProcess,
) -> None:
    server = paced_socket_server
    before = idle(server)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with open_socket(together_url(server), BEARER) as ws:
            await receive(ws)  # session.created
            await send(ws, type="input_text_buffer.append", text=LONG)
            await send(ws, type="input_text_buffer.commit")
            await receive_until(ws, lambda m: m["type"] == "conversation.item.audio_output.delta")
            await send(ws, type="input_text_buffer.clear")
            after = await receive_for(ws, 1.5)
            await send(ws, type="input_text_buffer.append", text="Again.")
            await send(ws, type="input_text_buffer.commit")
            await send(ws, type="input_text_buffer.commit")
            again = await receive_until(ws, lambda m: m["type"] == "conversation.item.audio_output.done")
            return after, again

    after, again = run(scenario())
    assert not [m for m in after if m["type"].startswith("conversation.item.audio_output")], after
    wait_for(
        lambda: metrics(server.url)[CANCELLED] > before, WAIT_S, "the cleared synthesis counted cancelled"
    )
    item = next(m["item_id"] for m in again if m["type"] == "conversation.item.input_text.received")
    deltas = [m for m in again if m["type"] == "conversation.item.audio_output.delta"]
    assert deltas and {m["item_id"] for m in deltas} == {item}  # the new item's audio only
    nothing_left(server)


def check_together_error(message: dict[str, Any]) -> None:
    assert message["type"] == "error" and set(message) == {"type", "error"}, message
    assert isinstance(message["error"]["message"], str) and message["error"]["message"]
    assert isinstance(message["error"]["code"], str) and message["error"]["code"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"model": "openai/tts-1-hd"}, "openai/tts-1-hd"),
        ({"voice": "zz_nope"}, "zz_nope"),
        ({"response_format": "mp3"}, "mp3"),
        ({"sample_rate": "fast"}, "fast"),
    ],
    ids=["model", "voice", "format", "rate"],
)
def test_together_settings_the_server_cannot_honour_are_an_error_then_a_1008_close(
    keyed_socket_server: ServerProcess, query: dict[str, str], says: str
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(together_url(keyed_socket_server, **query), BEARER) as ws:
            return await receive_to_close(ws)

    (error, *rest), code = run(scenario())
    check_together_error(error)
    assert says in error["error"]["message"] and not rest and code == 1008


def test_together_session_updates_and_unknown_messages(keyed_socket_server: ServerProcess) -> None:
    """A good voice: `session.updated` and the voice is the new one; an unknown type: an `error` and the
    socket speaks on; a voice the server lacks: an `error`, the session keeps its voice and speaks on."""

    async def scenario() -> None:
        async with open_socket(together_url(keyed_socket_server), BEARER) as ws:
            assert (await receive(ws))["session"]["voice"] == "af_heart"
            await send(ws, type="tts_session.updated", session={"voice": "af_bella"})
            updated = await receive(ws)
            assert updated["type"] == "session.updated" and updated["session"]["voice"] == "af_bella"
            await send(ws, type="response.create")
            check_together_error(await receive(ws))
            await send(ws, type="input_text_buffer.append", text="Still here.")
            await send(ws, type="input_text_buffer.commit")
            spoken = await receive_until(ws, lambda m: m["type"] == "conversation.item.audio_output.delta")
            assert spoken[0]["type"] == "conversation.item.input_text.received"
            await send(ws, type="tts_session.updated", session={"voice": "zz_nope"})
            error = await receive_until(ws, lambda m: m["type"] == "error")
            assert "zz_nope" in error[-1]["error"]["message"]
            check_together_error(error[-1])
            await send(ws, type="tts_session.updated", session={})
            kept = await receive_until(ws, lambda m: m["type"] == "session.updated")
            assert kept[-1]["session"]["voice"] == "af_bella"

    run(scenario())


@pytest.mark.parametrize(
    "raw",
    ["hello", '{"type": "input_text_buffer.append", "text": 5}'],
    ids=["not-json", "text-not-a-string"],
)
def test_a_together_message_the_server_cannot_read_is_an_error_then_a_1008_close(
    keyed_socket_server: ServerProcess, raw: str
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int]:
        async with open_socket(together_url(keyed_socket_server), BEARER) as ws:
            await receive(ws)  # session.created
            await ws.send(raw)
            return await receive_to_close(ws)

    (error, *rest), code = run(scenario())
    check_together_error(error)
    assert not rest and code == 1008


def test_a_silent_together_client_is_an_error_then_a_1008_close(paced_socket_server: ServerProcess) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int, float]:
        async with open_socket(together_url(paced_socket_server), BEARER) as ws:
            await receive(ws)  # session.created
            started = time.monotonic()
            messages, code = await receive_to_close(ws, WAIT_S)
            return messages, code, time.monotonic() - started

    (error, *rest), code, waited_s = run(scenario())
    check_together_error(error)
    assert "inactivity" in error["error"]["message"] and not rest and code == 1008
    # Together's clients send no keepalives between turns: its sockets wait the longest allowed.
    assert PACED_MAX_INACTIVITY_S - 0.5 <= waited_s < PACED_MAX_INACTIVITY_S + 15


# ---- nothing leaks -----------------------------------------------------------------------------------


async def drop_elevenlabs(server: ServerProcess, point: str) -> None:
    output_format = "mp3_22050_32" if point == "mid-audio" else "pcm_24000"
    url = elevenlabs_url(server, output_format=output_format, inactivity_timeout="60", auto_mode="false")
    ws = await open_socket(url)
    await send(ws, text=" ", context_id="c")
    if point == "before-text":
        await asyncio.to_thread(wait_for, lambda: metrics(server.url)[BOARD] == 1, WAIT_S, "the place taken")
    else:
        await send(ws, text=LONG, context_id="c")
        await send(ws, context_id="c", flush=True)
        if point == "mid-audio":
            await receive_until(ws, lambda m: bool(m.get("audio")))
    ws.transport.abort()  # no close frame: the TCP connection just ends


async def drop_together(server: ServerProcess, point: str) -> None:
    query = {"response_format": "ulaw", "sample_rate": "8000"} if point == "mid-audio" else {}
    ws = await open_socket(together_url(server, **query), BEARER)
    await receive(ws)  # session.created
    if point != "before-text":
        await send(ws, type="input_text_buffer.append", text=LONG)
        await send(ws, type="input_text_buffer.commit")
        if point == "mid-audio":
            await receive_until(ws, lambda m: m["type"] == "conversation.item.audio_output.delta")
    ws.transport.abort()


@pytest.mark.parametrize("point", ["before-text", "mid-audio", "after-flush"])
@pytest.mark.parametrize("protocol", ["elevenlabs", "together"])
def test_a_dropped_connection_leaves_no_place_or_encoder_held(
    paced_socket_server: ServerProcess, protocol: str, point: str
) -> None:
    server = paced_socket_server
    idle(server)
    run((drop_elevenlabs if protocol == "elevenlabs" else drop_together)(server, point))
    nothing_left(server)


@pytest.mark.parametrize("how", ["drop", "close_socket"])
def test_a_context_ended_as_soon_as_it_is_opened_gives_its_place_back(
    keyed_socket_server: ServerProcess, how: str
) -> None:
    """Its stream is cut before LitServe has queued it: no worker will ever close its place, so the front
    must (this leaked every place once)."""
    server = keyed_socket_server
    idle(server)

    async def once() -> None:
        ws = await open_socket(elevenlabs_url(server))
        await send(ws, text=" ", context_id="c")
        if how == "drop":
            ws.transport.abort()
        else:
            await send(ws, close_socket=True)
            assert await receive_to_close(ws) == ([], 1000)

    for _ in range(5):
        run(once())
    nothing_left(server)


# ---- fuzz --------------------------------------------------------------------------------------------

_IDS = st.sampled_from(["x", "y", "z"])
_TEXT = st.one_of(
    st.sampled_from(["", " ", "Hello.", "Hi there, ", "[pause:1s]", "123", "—", "\n", "a" * 40]),
    st.text(max_size=12),
)
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)
_MESSAGES = st.one_of(
    st.builds(lambda c, t: {"text": t, "context_id": c}, _IDS, _TEXT),
    st.builds(lambda c: {"text": " ", "context_id": c, "voice_settings": {"speed": 1.2}}, _IDS),
    st.builds(lambda c: {"context_id": c, "flush": True}, _IDS),
    st.builds(lambda c: {"text": "", "context_id": c, "flush": True}, _IDS),
    st.builds(lambda c: {"context_id": c, "close_context": True}, _IDS),
    st.just({"text": ""}),
    st.just({"close_socket": True}),
    st.dictionaries(
        st.sampled_from(["text", "context_id", "contextId", "flush", "close_context", "voice_settings", "x"]),
        _JUNK,
        max_size=3,
    ),
    st.builds(lambda c, s: {"text": " ", "context_id": c, "voice_settings": {"speed": s}}, _IDS, _JUNK),
    st.builds(lambda c: {"text": "Hello there.", "context_id": c, "flush": True}, _IDS),
    st.just("wait"),  # the client pauses: audio has time to come
)
PROBE = [
    {"text": " ", "context_id": "w"},
    {"text": "Hello.", "context_id": "w"},
    {"context_id": "w", "flush": True},
    {"context_id": "w", "close_context": True},
]
_AUDIO_KEYS = {"audio", "isFinal", "alignment", "normalizedAlignment", "contextId"}


def check_elevenlabs_reply(message: dict[str, Any]) -> None:
    """Any documented ElevenLabs reply."""
    if "audio" in message:
        assert set(message) == _AUDIO_KEYS and message["isFinal"] is None, message
        assert base64.b64decode(message["audio"], validate=True)
        for alignment in (message["alignment"], message["normalizedAlignment"]):
            if alignment is not None:
                check_alignment(alignment, None)
    elif "isFinal" in message:
        assert message["isFinal"] is True and set(message) == {"isFinal", "contextId"}, message
    else:
        check_error(message, message.get("contextId"))
    assert message.get("contextId", "x") in ("x", "y", "z", "w", "default"), message


def test_fuzzed_elevenlabs_message_sequences_get_only_documented_replies_and_leave_nothing_held(
    keyed_socket_server: ServerProcess,
) -> None:
    server = keyed_socket_server
    idle(server)
    pid = server.process.pid
    seen: list[str] = []

    @given(messages=st.lists(_MESSAGES, min_size=1, max_size=12), auto_mode=st.booleans())
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(messages: list[Any], auto_mode: bool) -> None:
        async def scenario() -> tuple[list[dict[str, Any]], int]:
            url = elevenlabs_url(
                server, auto_mode=str(auto_mode).lower(), inactivity_timeout=str(INACTIVITY_S)
            )
            async with open_socket(url) as ws:
                for message in messages:
                    if message == "wait":
                        await asyncio.sleep(0.5)
                    else:
                        await send_all(ws, [message])
                await send_all(ws, PROBE)  # then a turn of its own, to its end unless the socket is over
                replies: list[dict[str, Any]] = []
                with contextlib.suppress(ConnectionClosed):
                    while not replies or not (
                        replies[-1].get("contextId") == "w"
                        and (replies[-1].get("isFinal") is True or "error" in replies[-1])
                    ):
                        # A context that has spoken holds its place until it ends or idles out: on a worker
                        # too slow for two, the probe waits up to the inactivity timeout for its turn.
                        replies.append(await receive(ws, WAIT_S + INACTIVITY_S))
                await send_all(ws, [{"close_socket": True}])
                rest, code = await receive_to_close(ws)
                return replies + rest, code

        replies, code = run(scenario())
        assert code in (1000, 1008), (messages, replies, code)
        for reply in replies:
            check_elevenlabs_reply(reply)
            seen.append("audio" if "audio" in reply else "final" if "isFinal" in reply else "error")
        probe = [r for r in replies if r.get("contextId") == "w"]
        if probe and probe[-1].get("isFinal") is True:  # the socket was still up, and took a context
            assert audio_of(probe, "w"), (messages, replies)

    check()
    assert {"audio", "final", "error"} <= set(seen)  # every kind of reply was exercised
    assert server.process.poll() is None and server.process.pid == pid
    nothing_left(server)
    assert "Traceback" not in server.log(), server.log()[-3000:]  # no exception escaped a handler
