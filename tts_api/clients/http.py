"""What the HTTP clients share: the server's address, its error shape, its voice list.

ClientError               raised when talking to the server did not give the audio or list asked for
├── ServerUnreachable     nothing answers at the server's URL
├── RequestRejected       the server refused the request as invalid (4xx): the input must change
└── ServerFailed          the server failed, is overloaded or shutting down (5xx), or a stream broke
    └── ServerBusy        the server sent nothing within the read timeout (its queue is long)

`transport_failure` turns every way the HTTP exchange itself can fail into one of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "DEFAULT_SERVER",
    "SPEECH_PATH",
    "VOICES_PATH",
    "ClientError",
    "RequestRejected",
    "ServerBusy",
    "ServerFailed",
    "ServerUnreachable",
    "ServerVoice",
    "VoiceList",
    "acheck_response",
    "auth_headers",
    "check_response",
    "error_message",
    "transport_failure",
    "unreachable",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"
SPEECH_PATH = "/v1/audio/speech"
VOICES_PATH = "/v1/audio/voices"


class ClientError(Exception):
    """Raised when the server did not give what was asked; the message says why, in its own words."""


class ServerUnreachable(ClientError):
    """Raised when nothing answers at the server's URL."""


class RequestRejected(ClientError):
    """Raised when the server answers 4xx: the request itself is wrong (text, voice, speed, key)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerFailed(ClientError):
    """Raised when the server answers 5xx, or breaks off a stream it had started."""


class ServerBusy(ServerFailed):
    """Raised when the server sent nothing within the read timeout: requests wait in its queue."""


def unreachable(server: str, exc: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"no tts-api server answers at {server} ({_describe(exc)}). Start one with "
        "`python server.py` (or `tts-api serve`), or point --server / TTS_SERVER at it."
    )


def transport_failure(client: httpx.Client | httpx.AsyncClient, exc: httpx.HTTPError) -> ClientError:
    """What a failed exchange with the server (no answer, or none in time, or a broken connection) means."""
    server = str(client.base_url).rstrip("/")
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return unreachable(server, exc)
    if isinstance(exc, httpx.ReadTimeout):
        return ServerBusy(
            f"the server at {server} sent no audio within {client.timeout.read:g} s: it is busy (requests "
            "wait in its queue behind others). Retry later, or wait longer with --timeout."
        )
    return ServerFailed(f"the connection to the server at {server} failed ({_describe(exc)}); retry shortly")


def _describe(exc: Exception) -> str:
    """An exception's class and message (httpx's timeouts often carry no message)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header the server's API key check reads (the one the OpenAI SDK sends)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def error_message(response: httpx.Response) -> str:
    """The server's own message from an OpenAI-shaped error body, else the status line. Reads the body."""
    response.read()
    try:
        error = response.json().get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
    except (ValueError, AttributeError):
        pass
    text = response.text.strip()[:200]
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


def check_response(response: httpx.Response) -> None:
    """Raise RequestRejected (4xx) or ServerFailed (5xx) with the server's message; pass a 2xx."""
    if response.is_success:
        return
    message = error_message(response)
    if 400 <= response.status_code < 500 and response.status_code != 429:
        raise RequestRejected(message, response.status_code)
    retry = response.headers.get("retry-after")
    raise ServerFailed(message + (f" (retry after {retry} s)" if retry else ""))


async def acheck_response(response: httpx.Response) -> None:
    """`check_response` for a streamed response of an async client."""
    if not response.is_success:
        await response.aread()
        check_response(response)


@dataclass(frozen=True)
class ServerVoice:
    """One voice as GET /v1/audio/voices lists it."""

    id: str
    lang_code: str
    language: str  # a tag such as en-us
    gender: str
    available: bool  # its language's G2P is installed on the server


@dataclass(frozen=True)
class VoiceList:
    """The server's voices, OpenAI-name aliases and languages (code -> tag)."""

    voices: tuple[ServerVoice, ...]
    aliases: Mapping[str, str]
    languages: Mapping[str, str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VoiceList:
        voices = tuple(
            ServerVoice(
                id=str(v["id"]),
                lang_code=str(v["lang_code"]),
                language=str(v["language"]),
                gender=str(v["gender"]),
                available=bool(v.get("available", True)),
            )
            for v in data["voices"]
        )
        return cls(voices, dict(data.get("aliases", {})), dict(data.get("languages", {})))
