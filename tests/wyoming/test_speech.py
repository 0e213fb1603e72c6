"""Which voice a Wyoming request gets (the one named, the default, or one that speaks the language), and what
a client hears when the server does not answer."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Literal

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncTcpServer
from wyoming.tts import Synthesize, SynthesizeVoice

from tests.rawclient import silent_server
from tts_api.clients.http import ServerVoice, VoiceList
from tts_api.processes import free_port
from tts_api.wyoming import speech as speech_module
from tts_api.wyoming.handler import SpeechHandler
from tts_api.wyoming.speech import SpeechServer, UnknownLanguage

VOICES = VoiceList(
    voices=(
        ServerVoice("af_heart", "a", "en-us", "female", True),
        ServerVoice("am_adam", "a", "en-us", "male", True),
        ServerVoice("bf_emma", "b", "en-gb", "female", True),
        ServerVoice("ff_siwis", "f", "fr-fr", "female", True),
        ServerVoice("jf_alpha", "j", "ja", "female", False),
    ),
    aliases={"alloy": "af_alloy"},
    languages={"a": "en-us", "b": "en-gb", "f": "fr-fr", "j": "ja"},
)


def choose(voice: SynthesizeVoice | None, default: str = "af_heart") -> str:
    async def run() -> str:
        server = SpeechServer("http://127.0.0.1:9", default_voice=default)
        server._voices = VOICES  # as if fetched from GET /v1/audio/voices
        try:
            return await server.voice_for(voice)
        finally:
            await server.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("voice", "default", "chosen"),
    [
        (None, "af_heart", "af_heart"),
        (SynthesizeVoice(), "am_adam", "am_adam"),
        (SynthesizeVoice(name="af_bella(2)+af_sky(1)"), "af_heart", "af_bella(2)+af_sky(1)"),
        (SynthesizeVoice(language="en_GB"), "af_heart", "bf_emma"),
        (SynthesizeVoice(language="en-US"), "am_adam", "am_adam"),  # the default when it speaks it
        (SynthesizeVoice(language="fr"), "af_heart", "ff_siwis"),  # a bare language, any region
        (SynthesizeVoice(language="en"), "bf_emma", "bf_emma"),
    ],
)
def test_the_voice_is_the_named_one_else_one_that_speaks_the_language(
    voice: SynthesizeVoice | None, default: str, chosen: str
) -> None:
    assert choose(voice, default) == chosen


@pytest.mark.parametrize("language", ["de_DE", "ja"])  # none at all; only voices whose language is missing
def test_a_language_no_voice_speaks_is_refused(language: str) -> None:
    with pytest.raises(UnknownLanguage, match=repr(language)):
        choose(SynthesizeVoice(language=language))


async def _synthesize_through(url: str) -> list[Event]:
    """Run the Wyoming service for the server at `url`; one client asks for speech; every event it got."""
    server = SpeechServer(url, default_voice="af_heart")
    port = free_port()
    tcp = AsyncTcpServer("127.0.0.1", port)
    await tcp.start(partial(SpeechHandler, server=server))
    events: list[Event] = []
    try:
        async with AsyncTcpClient("127.0.0.1", port, read_timeout=30) as client:
            await client.write_event(Synthesize(text="Hello there.").event())
            while (event := await client.read_event()) is not None:
                events.append(event)
    finally:
        await tcp.stop()
        await server.aclose()
    return events


@pytest.mark.parametrize(
    ("answer", "message"),
    [("nothing", "is busy"), ("close", "the connection to the server")],
    ids=["nothing-within-the-timeout", "connection-closed"],
)
def test_a_server_that_does_not_answer_is_an_error_event(
    monkeypatch: pytest.MonkeyPatch, answer: Literal["nothing", "close"], message: str
) -> None:
    monkeypatch.setattr(speech_module, "READ_TIMEOUT_S", 1.0)
    with silent_server(answer) as url:
        events = asyncio.run(asyncio.wait_for(_synthesize_through(url), 60))
    assert [e.type for e in events] == ["error"], "the client must hear why, not see the connection drop"
    assert message in Error.from_event(events[0]).text
