"""Response formats: names, media types and the PCM layout every process agrees on (no codec imports)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "BYTES_PER_SAMPLE",
    "MEDIA_TYPES",
    "OPUS_RATES",
    "RESPONSE_FORMATS",
    "SAMPLE_RATE",
    "SAMPLE_RATES",
    "ULAW_RATE",
    "WAV_HEADER_BYTES",
    "ResponseFormat",
    "media_type",
    "wav_size_fields",
]

SAMPLE_RATE: int = 24_000  # Kokoro's output rate
ULAW_RATE = 8_000  # mu-law's own rate (telephony): `audio/basic` without a rate means it
BYTES_PER_SAMPLE = 2  # pcm and wav carry 16-bit little-endian mono samples

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm", "ulaw"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = get_args(ResponseFormat)

MEDIA_TYPES: Mapping[ResponseFormat, str] = MappingProxyType(
    {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg; codecs=opus",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": f"audio/pcm; rate={SAMPLE_RATE}; channels=1",
        "ulaw": "audio/basic",  # raw G.711 mu-law (telephony); extension
    }
)
# Rates an encoder may resample to (`sample_rate`): what ElevenLabs' pcm_* formats offer, and telephony's
# 8 kHz. Opus takes only 8, 12, 16, 24 and 48 kHz.
SAMPLE_RATES: tuple[int, ...] = (8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
OPUS_RATES: tuple[int, ...] = (8_000, 12_000, 16_000, 24_000, 48_000)

# The server's WAV header: RIFF, a 16-byte fmt chunk, then the data chunk's header. Streamed, its two
# size fields say "unknown length"; a whole file gets its true sizes written in afterwards.
WAV_HEADER_BYTES = 44


def wav_size_fields(file_bytes: int) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    """The (offset, bytes) of the RIFF and data size fields of a `file_bytes` long WAV with our header."""
    return (
        (4, (file_bytes - 8).to_bytes(4, "little")),
        (40, (file_bytes - WAV_HEADER_BYTES).to_bytes(4, "little")),
    )


def media_type(fmt: ResponseFormat, rate: int | None = None) -> str:
    """The Content-Type of `fmt` audio; raw formats say their rate when it is not their own."""
    if fmt == "pcm" and rate not in (None, SAMPLE_RATE):
        return f"audio/pcm; rate={rate}; channels=1"
    if fmt == "ulaw" and rate not in (None, ULAW_RATE):
        return f"audio/basic; rate={rate}"
    return MEDIA_TYPES[fmt]
