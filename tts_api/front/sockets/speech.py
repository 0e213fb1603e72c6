"""What a voice-agent socket asks for, as a live speech request: voice, output format, speed, normalization.

The protocols name formats their own way (ElevenLabs' `pcm_16000`, `ulaw_8000`, `mp3_22050_32`; Together's
`response_format` + `sample_rate`); this module turns them into the speech route's fields and validates
them with the speech route's own schema, so a voice tts-api does not have is refused the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import InvalidRequest
from ...schemas import RequestContext, SpeechRequest, parse_speech_request

__all__ = ["OutputFormat", "live_request", "output_format"]

_FORMAT = re.compile(r"(?P<codec>pcm|ulaw|mp3|opus)_(?P<rate>\d{4,5})(?:_(?P<kbps>\d{2,3}))?")


@dataclass(frozen=True)
class OutputFormat:
    """A response format at a rate (and, for the lossy ones, a bit rate)."""

    response_format: str
    rate: int
    bit_rate: int | None = None


def output_format(name: str) -> OutputFormat:
    """ElevenLabs' `output_format` (`pcm_24000`, `ulaw_8000`, `mp3_22050_32`, `mp3_44100`, ...; a lossy one
    without its kbps gets the server's bit rate); InvalidRequest if it is none of them."""
    match = _FORMAT.fullmatch(name)
    if match is None or (match["kbps"] is not None and match["codec"] not in ("mp3", "opus")):
        raise InvalidRequest(
            f"output_format {name!r} is not one this server makes; use pcm_8000 ... pcm_48000, ulaw_8000, "
            "mp3_22050_32, mp3_44100_128 (mp3_RATE[_KBPS]), opus_48000_64",
            param="output_format",
        )
    kbps = match["kbps"]
    return OutputFormat(match["codec"], int(match["rate"]), int(kbps) * 1000 if kbps else None)


def live_request(
    context: RequestContext,
    *,
    voice: str,
    output: OutputFormat,
    speed: float = 1.0,
    normalize: bool = True,
) -> SpeechRequest:
    """The speech request of a live stream; TTSError (InvalidRequest) for a voice, format or speed the
    server cannot honour."""
    body = {
        "input": "",
        "voice": voice,
        "response_format": output.response_format,
        "sample_rate": output.rate,
        "bit_rate": output.bit_rate,
        "speed": speed,
        "normalize": normalize,
    }
    return parse_speech_request(body, context, live=True).request
