"""The Wyoming service against a real server (`server.py --wyoming-port`), through the wyoming client.

Each test speaks the protocol as Home Assistant does: `describe`, `synthesize`, and the streaming
`synthesize-start` / `synthesize-chunk`s / `synthesize` (sent for compatibility) / `synthesize-stop`.
The server is the shared tiny_server; how the service stops with it is in tests/e2e/test_resilience.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from tests.rawclient import metrics, wait_for
from tts_api.processes import ROOT, ServerProcess, free_port
from tts_api.wyoming.handler import SAMPLES_PER_CHUNK, SENTENCE_GAP_BYTES

pytestmark = pytest.mark.server

READ_TIMEOUT_S = 60.0
GAP_SAMPLES = SENTENCE_GAP_BYTES // 2


class Wyoming:
    """Where a Wyoming service listens."""

    def __init__(self, port: int, http: ServerProcess) -> None:
        self.port = port
        self.http = http

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port, connect_timeout=10, read_timeout=READ_TIMEOUT_S)


@pytest.fixture(scope="module")
def wyoming(tiny_server: ServerProcess, tiny_wyoming_port: int) -> Wyoming:
    wait_for(lambda: _listening(tiny_wyoming_port), 30, f"the Wyoming service on port {tiny_wyoming_port}")
    return Wyoming(tiny_wyoming_port, tiny_server)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _read_until(client: AsyncTcpClient, last: str) -> list[Event]:
    """Every event up to and including the first of type `last` (or an error), within READ_TIMEOUT_S."""
    events: list[Event] = []

    async def read() -> list[Event]:
        while True:
            event = await client.read_event()
            assert event is not None, f"the connection closed before {last}; got {[e.type for e in events]}"
            events.append(event)
            if event.type in (last, "error"):
                return events

    return await asyncio.wait_for(read(), READ_TIMEOUT_S)


def _pcm(events: list[Event]) -> bytes:
    return b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))


def test_describe_lists_every_voice_with_its_language(wyoming: Wyoming) -> None:
    async def describe() -> Info:
        async with wyoming.client() as client:
            await client.write_event(Describe().event())
            return Info.from_event((await _read_until(client, "info"))[-1])

    info = asyncio.run(describe())
    listed = httpx.get(f"{wyoming.http.url}/v1/audio/voices", timeout=30).json()["voices"]
    [program] = info.tts
    assert program.installed and program.supports_synthesize_streaming
    voices = {v.name: v for v in program.voices}
    assert set(voices) == {v["id"] for v in listed}
    assert voices["af_heart"].languages == ["en-us"] and voices["bf_emma"].languages == ["en-gb"]
    # Home Assistant offers installed voices only: those whose language the server can speak.
    assert {name for name, v in voices.items() if v.installed} == {v["id"] for v in listed if v["available"]}


def test_synthesize_streams_24khz_16bit_mono_pcm(wyoming: Wyoming, tiny_expected: Callable[..., int]) -> None:
    text = "Hello from Home Assistant."

    async def synthesize() -> list[Event]:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="af_heart")).event())
            return await _read_until(client, "audio-stop")

    events = asyncio.run(synthesize())
    kinds = [e.type for e in events]
    assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop"
    assert set(kinds[1:-1]) == {"audio-chunk"}
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (24_000, 2, 1)
    chunks = [AudioChunk.from_event(e) for e in events[1:-1]]
    assert all((c.rate, c.width, c.channels) == (24_000, 2, 1) for c in chunks)
    assert max(len(c.audio) for c in chunks) <= 2 * SAMPLES_PER_CHUNK
    assert len(_pcm(events)) == 2 * tiny_expected(text)


def test_a_text_stream_is_spoken_sentence_by_sentence_while_it_arrives(
    wyoming: Wyoming, tiny_expected: Callable[..., int]
) -> None:
    first, second = "Hello world.", "This is the second sentence."

    async def stream() -> tuple[list[Event], list[Event]]:
        async with wyoming.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(language="en_US")).event())
            await client.write_event(SynthesizeChunk(text="Hello wor").event())
            await client.write_event(SynthesizeChunk(text="ld. This is").event())
            # The first sentence is complete ("This" follows it): its audio comes before any more text.
            before = await _read_until(client, "audio-chunk")
            await client.write_event(SynthesizeChunk(text=" the second sentence.").event())
            # Home Assistant repeats the whole text as `synthesize` for services that cannot stream.
            await client.write_event(Synthesize(text=f"{first} {second}").event())
            await client.write_event(SynthesizeStop().event())
            return before, await _read_until(client, "synthesize-stopped")

    before, after = asyncio.run(stream())
    events = before + after
    kinds = [e.type for e in events]
    assert kinds[:2] == ["audio-start", "audio-chunk"]
    assert kinds[-2:] == ["audio-stop", "synthesize-stopped"]
    assert kinds.count("audio-start") == 1 and kinds.count("audio-stop") == 1
    # Two requests, in order, joined by a sentence's silence; the repeated `synthesize` added nothing.
    pcm = _pcm(events)
    one, two = tiny_expected(first), tiny_expected(second)
    assert len(pcm) == 2 * (one + GAP_SAMPLES + two)
    assert pcm[2 * one : 2 * (one + GAP_SAMPLES)] == bytes(2 * GAP_SAMPLES)


@pytest.mark.parametrize("streaming", [False, True], ids=["synthesize", "text-stream"])
def test_a_rejected_request_sends_the_servers_message_and_closes(wyoming: Wyoming, streaming: bool) -> None:
    async def ask() -> tuple[list[Event], Event | None]:
        async with wyoming.client() as client:
            voice = SynthesizeVoice(name="af_nobody")
            if streaming:
                await client.write_event(SynthesizeStart(voice=voice).event())
                await client.write_event(SynthesizeChunk(text="Hello there.").event())
                await client.write_event(SynthesizeStop().event())
            else:
                await client.write_event(Synthesize(text="Hello there.", voice=voice).event())
            events = await _read_until(client, "error")
            return events, await client.read_event()

    events, after = asyncio.run(ask())
    assert [e.type for e in events] == ["error"]
    assert Error.from_event(events[0]).text == "voice 'af_nobody' not found; see GET /v1/audio/voices"
    assert after is None  # the connection was closed: the client does not wait for audio


def test_a_client_that_leaves_cancels_the_synthesis_on_the_server(wyoming: Wyoming) -> None:
    text = " ".join(f"This is sentence number {n} of a long story." for n in range(40))
    cancelled = 'tts_requests_cancelled_total{stage="streaming"}'
    before = metrics(wyoming.http.url)[cancelled]

    async def leave_after_the_first_audio() -> None:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text=text).event())
            await _read_until(client, "audio-chunk")

    asyncio.run(leave_after_the_first_audio())
    wait_for(lambda: metrics(wyoming.http.url)[cancelled] > before, 60, "the server to cancel the synthesis")


def test_the_service_also_runs_alone_from_the_cli(wyoming: Wyoming) -> None:
    port = free_port()
    command = [sys.executable, "-m", "tts_api.cli", "wyoming", "--server", wyoming.http.url]
    process = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT)
    try:
        wait_for(lambda: _listening(port), 30, "the standalone Wyoming service")

        async def describe() -> Event:
            async with AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT_S) as client:
                await client.write_event(Describe().event())
                return (await _read_until(client, "info"))[-1]

        assert len(Info.from_event(asyncio.run(describe())).tts[0].voices) == 54
        process.terminate()  # SIGTERM: the service stops its server and exits cleanly
        assert process.wait(timeout=15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
