"""Read a speech response as it streams: audio bytes in order, word timings on the side, failures raised.

`speech_events` (sync) reads the NDJSON event stream the CLI asks for; `pcm_stream` (async) reads raw
PCM for the Wyoming bridge. Both turn every way a response can go wrong into a ClientError.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .http import SPEECH_PATH, ServerFailed, acheck_response, check_response, transport_failure

__all__ = ["Audio", "Words", "pcm_stream", "speech_events"]


@dataclass(frozen=True)
class Audio:
    """Encoded audio, the next piece of the file."""

    data: bytes


@dataclass(frozen=True)
class Words:
    """Timings of words just synthesized: `{word, start, end, char_start, char_end}` each (seconds)."""

    words: list[dict[str, Any]] = field(default_factory=list)


def speech_events(client: httpx.Client, body: Mapping[str, Any]) -> Iterator[Audio | Words]:
    """POST `body` as an NDJSON stream and yield its audio and word timings until the server's done event."""
    request = {**body, "stream": True, "stream_format": "ndjson"}
    try:
        with client.stream("POST", SPEECH_PATH, json=request) as response:
            check_response(response)
            try:
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind = event.get("type")
                    if kind == "speech.audio.delta":
                        yield Audio(base64.b64decode(event["audio"]))
                    elif kind == "speech.word_timestamps":
                        yield Words(list(event.get("words", [])))
                    elif kind == "speech.audio.done":
                        return
                    elif kind == "error":
                        raise ServerFailed(str(event.get("error", {}).get("message", "synthesis failed")))
            except (httpx.HTTPError, ValueError) as exc:
                raise _broke_off(client, exc) from exc
    except httpx.HTTPError as exc:  # before any answer: refused, nothing in time, or closed on us
        raise transport_failure(client, exc) from exc
    raise ServerFailed("the server ended the speech stream before its end")


async def pcm_stream(client: httpx.AsyncClient, body: Mapping[str, Any]) -> AsyncGenerator[bytes, None]:
    """POST `body` for raw 16-bit PCM and yield whole samples (an even number of bytes) as they arrive."""
    request = {**body, "response_format": "pcm", "stream": True, "stream_format": "audio"}
    carry = b""
    try:
        async with client.stream("POST", SPEECH_PATH, json=request) as response:
            await acheck_response(response)
            try:
                async for data in response.aiter_bytes():
                    data = carry + data
                    whole = len(data) - len(data) % 2
                    carry = data[whole:]
                    if whole:
                        yield data[:whole]
            except httpx.HTTPError as exc:
                # The server cuts a raw stream off when synthesis fails after the first byte.
                raise _broke_off(client, exc) from exc
    except httpx.HTTPError as exc:  # before any answer: refused, nothing in time, or closed on us
        raise transport_failure(client, exc) from exc


def _broke_off(client: httpx.Client | httpx.AsyncClient, exc: Exception) -> ServerFailed:
    """A stream that had started and did not end (the server cuts it off when synthesis fails)."""
    if isinstance(exc, httpx.ReadTimeout):
        return ServerFailed(f"the speech stream stalled: nothing for {client.timeout.read:g} s")
    return ServerFailed(f"the speech stream broke off: {type(exc).__name__}: {exc}")
