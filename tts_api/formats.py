"""Response formats: names, media types and the PCM layout every process agrees on (no codec imports)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "BYTES_PER_SAMPLE",
    "MEDIA_TYPES",
    "RESPONSE_FORMATS",
    "SAMPLE_RATE",
    "WAV_HEADER_BYTES",
    "ResponseFormat",
    "wav_size_fields",
]

SAMPLE_RATE: int = 24_000  # Kokoro's output rate
BYTES_PER_SAMPLE = 2  # pcm and wav carry 16-bit little-endian mono samples

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = get_args(ResponseFormat)

MEDIA_TYPES: Mapping[ResponseFormat, str] = MappingProxyType(
    {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg; codecs=opus",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": f"audio/pcm; rate={SAMPLE_RATE}; channels=1",
    }
)

# The server's WAV header: RIFF, a 16-byte fmt chunk, then the data chunk's header. Streamed, its two
# size fields say "unknown length"; a whole file gets its true sizes written in afterwards.
WAV_HEADER_BYTES = 44


def wav_size_fields(file_bytes: int) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    """The (offset, bytes) of the RIFF and data size fields of a `file_bytes` long WAV with our header."""
    return (
        (4, (file_bytes - 8).to_bytes(4, "little")),
        (40, (file_bytes - WAV_HEADER_BYTES).to_bytes(4, "little")),
    )
