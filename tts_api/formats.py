"""Response formats: names, media types and the PCM layout every process agrees on (no codec imports)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

__all__ = ["BYTES_PER_SAMPLE", "MEDIA_TYPES", "RESPONSE_FORMATS", "SAMPLE_RATE", "ResponseFormat"]

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
