"""The server as the Wyoming service sees it: its voice list as a Wyoming `info`, and PCM for a text.

One instance per process, shared by every connection: one HTTP connection pool to the server, and the
voice list fetched once (when the first `describe` needs it, so the service can start before the server).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice
from wyoming.tts import SynthesizeVoice

from .. import __version__
from ..clients.http import (
    VOICES_PATH,
    ClientError,
    ServerVoice,
    VoiceList,
    auth_headers,
    check_response,
    transport_failure,
)
from ..clients.speech import pcm_stream
from ..voices import LANGUAGE_NAMES

__all__ = ["SpeechServer", "UnknownLanguage", "language_tag"]

KOKORO = Attribution(
    name="hexgrad (Kokoro-82M), served by tts-api", url="https://huggingface.co/hexgrad/Kokoro-82M"
)
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0  # a request may wait in the server's queue behind others


class UnknownLanguage(ClientError):
    """Raised when a request asks for a language none of the server's voices speaks."""


def language_tag(language: str) -> str:
    """`en_US`, `en-US` and `en-us` alike, as the server's voice list writes them."""
    return language.strip().lower().replace("_", "-")


def _language_name(voice: ServerVoice) -> str:
    return LANGUAGE_NAMES.get(voice.lang_code, voice.language)


class SpeechServer:
    """A tts-api server reached over HTTP: its voices, and speech as 24 kHz 16-bit mono PCM."""

    def __init__(
        self,
        url: str,
        *,
        default_voice: str,
        api_key: str | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.default_voice = default_voice
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=auth_headers(api_key),
            timeout=httpx.Timeout(read_timeout_s or READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )
        self._voices: VoiceList | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def voices(self) -> VoiceList:
        """The server's voice list (fetched once; a failure is not cached, so it is retried)."""
        if self._voices is None:
            try:
                response = await self._client.get(VOICES_PATH)
            except httpx.HTTPError as exc:
                raise transport_failure(self._client, exc) from exc
            check_response(response)
            self._voices = VoiceList.from_json(response.json())
        return self._voices

    async def info(self) -> Info:
        """What `describe` answers: one TTS program with a Wyoming voice per Kokoro voice."""
        listing = await self.voices()
        voices = [
            TtsVoice(
                name=voice.id,
                description=f"{voice.id} ({_language_name(voice)}, {voice.gender})",
                attribution=KOKORO,
                # Home Assistant offers only installed voices: those whose language the server can speak.
                installed=voice.available,
                version=None,
                languages=[voice.language],
            )
            for voice in listing.voices
        ]
        program = TtsProgram(
            name="tts-api",
            description="Kokoro-82M text to speech (tts-api)",
            attribution=KOKORO,
            installed=True,
            version=__version__,
            voices=voices,
            supports_synthesize_streaming=True,
        )
        return Info(tts=[program])

    async def voice_for(self, requested: SynthesizeVoice | None) -> str:
        """The voice to speak with: the one named, else the default or the first that speaks the language."""
        if requested is not None and requested.name:
            return requested.name  # the server resolves ids, OpenAI names and blends, and rejects the rest
        if requested is None or not requested.language:
            return self.default_voice
        tag = language_tag(requested.language)
        listing = await self.voices()
        speakers = [v.id for v in listing.voices if v.available and v.language == tag]
        if not speakers:  # "en" for en-us and en-gb voices
            speakers = [v.id for v in listing.voices if v.available and v.language.split("-")[0] == tag]
        if not speakers:
            raise UnknownLanguage(f"no voice speaks {requested.language!r}; see the voices in `describe`")
        return self.default_voice if self.default_voice in speakers else speakers[0]

    def pcm(self, text: str, voice: str, *, speed: float = 1.0) -> AsyncGenerator[bytes, None]:
        """Speech for `text` as PCM bytes (whole samples) as the server streams it; every failure, of the
        server or of the connection to it, is a ClientError."""
        body = {"model": "kokoro", "input": text, "voice": voice, "speed": speed}
        return pcm_stream(self._client, body)
