"""PCM conversion and per-request streaming encoders for every response format."""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType, TracebackType
from typing import cast

import av
import numpy as np
import numpy.typing as npt

from .formats import RESPONSE_FORMATS, SAMPLE_RATE, WAV_HEADER_BYTES, ResponseFormat, wav_size_fields

__all__ = ["Encoder", "Patch", "apply_patches", "open_encoder", "to_pcm16", "to_ulaw"]

# Ample for mono 24 kHz speech in all three lossy codecs.
_BIT_RATE = 64_000
# 0xFFFFFFFF in both RIFF size fields is what players accept as "length unknown" for streamed WAV.
_UNKNOWN_SIZE = 0xFFFFFFFF

# A file's header, fixed up once its end is known: bytes that replace the file's own from `offset` on.
Patch = tuple[int, bytes]


def apply_patches(data: bytes, patches: list[Patch]) -> bytes:
    """`data` (a whole file as its encoder handed it out) with `patches` written in, in order."""
    out = bytearray(data)
    for offset, patch in patches:
        out[offset : offset + len(patch)] = patch
    return bytes(out)


def _quantize(samples: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def to_pcm16(samples: npt.NDArray[np.float32]) -> bytes:
    """Return `samples` as little-endian int16 bytes: clipped to [-1, 1], NaN as silence."""
    return _quantize(samples).astype("<i2").tobytes()


class Encoder(ABC):
    """One request's encoder: turns chunks of samples (float, or 16-bit PCM) into bytes of one response
    format.

    Responsibilities: encode each chunk and hand back the bytes that are ready, flush everything
    (codec delay, container trailer) on `finish()`, and release native resources on `close()`
    however the request ends. Never share one between requests or threads.
    """

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self._closed = False
        self.rate = rate  # of the encoded audio; the model's 24 kHz is resampled to it
        self._resampler = _Resampler(rate) if rate != SAMPLE_RATE else None
        # Set by a file's `finish()`: header fields to write over bytes handed out earlier.
        self.patches: list[Patch] = []

    def write(self, samples: npt.NDArray[np.float32]) -> bytes:
        """Encode one chunk; return the bytes that are ready now (may be b"")."""
        return self.write_pcm(_quantize(samples))

    def write_pcm(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """`write` for a chunk already quantized to 16 bits (at the model's rate)."""
        self._check_open()
        return self._write(pcm if self._resampler is None else self._resampler.push(pcm))

    def finish(self) -> bytes:
        """Flush everything, close the encoder, and return the remaining bytes; for a file, `patches` then
        says what to write over the bytes handed out earlier (its header, now that the end is known)."""
        self._check_open()
        try:
            tail = self._write(self._resampler.flush()) if self._resampler is not None else b""
            return tail + self._finish()
        finally:
            self.close()

    def close(self) -> None:
        """Release native resources; safe mid-stream, after `finish()`, and more than once."""
        if not self._closed:
            self._closed = True
            self._resampler = None
            self._release()

    def __enter__(self) -> Encoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("encoder is closed; open a new one with open_encoder()")

    @abstractmethod
    def _write(self, pcm: npt.NDArray[np.int16]) -> bytes: ...

    @abstractmethod
    def _finish(self) -> bytes: ...

    @abstractmethod
    def _release(self) -> None:
        """Free what the encoder holds; called exactly once."""


class _Resampler:
    """The model's 24 kHz to another rate, chunk by chunk, with FFmpeg's resampler (its filter state carries
    over between chunks, so the joins are as clean as one long signal's)."""

    def __init__(self, rate: int) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def push(self, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        if not pcm.size:
            return pcm
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        return self._join(self._resampler.resample(frame))

    def flush(self) -> npt.NDArray[np.int16]:
        return self._join(self._resampler.resample(None))

    @staticmethod
    def _join(frames: list[av.AudioFrame]) -> npt.NDArray[np.int16]:
        arrays = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(arrays).astype(np.int16) if arrays else np.zeros(0, np.int16)


class _PcmEncoder(Encoder):
    # Raw PCM has no header and nothing to gain from buffering, so it always streams.
    def _write(self, pcm: npt.NDArray[np.int16]) -> bytes:
        return pcm.astype("<i2").tobytes()

    def _finish(self) -> bytes:
        return b""

    def _release(self) -> None:
        return None  # holds nothing


def to_ulaw(pcm: npt.NDArray[np.int16]) -> bytes:
    """G.711 mu-law bytes of 16-bit samples (telephony's 8-bit encoding), as the reference coder makes
    them: on 14-bit magnitudes, biased by 33, in eight segments."""
    v = pcm.astype(np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(v), 8159) + 33
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    code = np.where(
        segment >= 8,
        0x7F,
        (np.minimum(segment, 7) << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0xF),
    )
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()


class _UlawEncoder(_PcmEncoder):
    """Raw mu-law, as telephony (Twilio) takes it: no header, 8 bits a sample."""

    def _write(self, pcm: npt.NDArray[np.int16]) -> bytes:
        return to_ulaw(pcm)


def _wav_header(data_size: int | None, rate: int = SAMPLE_RATE) -> bytes:
    """Return the 44-byte header of 16-bit mono PCM WAV; `None` marks a stream of unknown length."""
    riff_size = _UNKNOWN_SIZE if data_size is None else 36 + data_size
    data_field = _UNKNOWN_SIZE if data_size is None else data_size
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size
        1,  # WAVE_FORMAT_PCM
        1,  # channels
        rate,
        rate * 2,  # byte rate
        2,  # block align
        16,  # bits per sample
        b"data",
        data_field,
    )


class _WavEncoder(Encoder):
    """A header whose sizes say "unknown", then the samples as they come; a file's true sizes come out as
    `patches` at the end (a stream's stay unknown, which players accept)."""

    def __init__(self, streaming: bool, rate: int = SAMPLE_RATE) -> None:
        super().__init__(rate)
        self._streaming = streaming
        self._header_sent = False
        self._data_bytes = 0

    def _write(self, pcm: npt.NDArray[np.int16]) -> bytes:
        data = pcm.astype("<i2").tobytes()
        self._data_bytes += len(data)
        if self._header_sent:
            return data
        self._header_sent = True
        return _wav_header(None, self.rate) + data

    def _finish(self) -> bytes:
        if not self._header_sent:
            return _wav_header(
                0, self.rate
            )  # nothing was sent, so the true sizes are known even when streaming
        if not self._streaming:
            self.patches = list(wav_size_fields(WAV_HEADER_BYTES + self._data_bytes))
        return b""

    def _release(self) -> None:
        return None  # holds nothing


@dataclass(frozen=True)
class _Codec:
    container: str
    codec: str
    bit_rate: int | None
    streaming_options: tuple[tuple[str, str], ...] = ()
    file_options: tuple[tuple[str, str], ...] = ()
    # MP3, ADTS and Ogg Opus have no empty form that decoders open.
    can_be_empty: bool = False


_CODECS: Mapping[ResponseFormat, _Codec] = MappingProxyType(
    {
        # Layer III at 24 kHz is MPEG-2: 576 samples a frame. Only seekable output gets the
        # Xing/LAME "Info" frame (frame count, encoder delay and padding for gapless decoding).
        "mp3": _Codec("mp3", "libmp3lame", _BIT_RATE),
        # Ogg holds back the page being filled until the next packet arrives; short pages keep that
        # lag to ~60 ms when streaming for ~4 kbps of page headers. A file keeps the 1 s default.
        "opus": _Codec("ogg", "libopus", _BIT_RATE, streaming_options=(("page_duration", "60000"),)),
        # ADTS cannot record the encoder's 1024-sample priming, so decoders play it as silence.
        "aac": _Codec("adts", "aac", _BIT_RATE),
        # No 8 KiB padding block. Only seekable output gets STREAMINFO's total samples and MD5.
        "flac": _Codec(
            "flac",
            "flac",
            None,
            streaming_options=(("metadata_header_padding", "0"),),
            file_options=(("metadata_header_padding", "0"),),
            can_be_empty=True,
        ),
    }
)


class _Chunks:
    """An unseekable, write-only file for PyAV, so a muxer never seeks back into bytes already sent."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(data)
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class _PatchedFile:
    """A seekable file for PyAV whose bytes are handed out as they are written, so a whole file never sits
    in memory. A muxer writes a file front to back and, at its end, goes back to fix its header (MP3's Info
    frame, FLAC's STREAMINFO): a write into bytes already handed out is kept as a patch instead."""

    def __init__(self) -> None:
        self._pos = 0
        self._sent = 0  # bytes [0, sent) were handed out
        self._pending = bytearray()  # bytes [sent, sent + len) were not
        self.patches: list[Patch] = []

    def write(self, data: bytes) -> int:
        size, pos = len(data), self._pos
        if pos < self._sent:
            head = bytes(data[: self._sent - pos])
            self.patches.append((pos, head))
            data, pos = data[len(head) :], pos + len(head)
        if data:
            at = pos - self._sent
            if at > len(self._pending):
                self._pending.extend(bytes(at - len(self._pending)))
            self._pending[at : at + len(data)] = data
        self._pos += size
        return size

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._sent + len(self._pending))[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = bytes(self._pending)
        self._sent += len(data)
        self._pending.clear()
        return data


class _AVEncoder(Encoder):
    """PyAV codec + muxer writing into memory, handing out its bytes as they come.

    Streaming output is unseekable: FFmpeg then flushes its I/O buffer after every packet and writes
    no header it would later patch. A file's output is seekable, so that the trailer can fix up the
    header (MP3 Info frame, FLAC STREAMINFO); those fixes come out as `patches` (see _PatchedFile).
    """

    def __init__(
        self, codec: _Codec, streaming: bool, rate: int = SAMPLE_RATE, bit_rate: int | None = None
    ) -> None:
        super().__init__(rate)
        self._codec = codec
        self._out: _Chunks | _PatchedFile = _Chunks() if streaming else _PatchedFile()
        self._container = av.open(
            self._out,
            mode="w",
            format=codec.container,
            container_options=dict(codec.streaming_options if streaming else codec.file_options),
        )
        try:
            stream = self._container.add_stream(codec.codec, rate=rate, layout="mono")
            self._stream = cast(av.AudioStream, stream)  # PyAV types only literal codec names
            if codec.bit_rate is not None:
                self._stream.bit_rate = bit_rate or codec.bit_rate
        except BaseException:
            self._container.close()
            raise
        self._samples = 0

    def _write(self, pcm: npt.NDArray[np.int16]) -> bytes:
        self._encode(pcm)
        return self._out.take()

    def _finish(self) -> bytes:
        if self._samples == 0 and not self._codec.can_be_empty:
            # One silent sample makes a valid file (decoded as a frame of silence where the codec pads).
            self._encode(np.zeros(1, dtype=np.int16))
        self._container.mux(self._stream.encode(None))
        # Closing writes the trailer (Ogg's last page, FLAC's STREAMINFO); read the output after it.
        self._container.close()
        if isinstance(self._out, _PatchedFile):
            self.patches = self._out.patches
        return self._out.take()

    def _encode(self, pcm: npt.NDArray[np.int16]) -> None:
        if not pcm.size:
            return  # PyAV cannot build a zero-sample frame (it raises MemoryError)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.time_base = Fraction(1, self.rate)
        frame.pts = self._samples
        self._samples += pcm.size
        self._container.mux(self._stream.encode(frame))

    def _release(self) -> None:
        try:
            # PyAV writes the trailer on any close, even from the GC; mid-stream nobody reads it.
            self._container.close()
        except av.FFmpegError:
            pass  # the output is being abandoned; a failing trailer there changes nothing
        finally:
            # Dropping the last references frees the codec context and buffers now, not at GC.
            del self._stream, self._container, self._out


def open_encoder(
    fmt: ResponseFormat, *, streaming: bool = True, rate: int = SAMPLE_RATE, bit_rate: int | None = None
) -> Encoder:
    """Return a new encoder for one request's audio in `fmt`, at `rate` (the model's 24 kHz resampled to
    it), at `bit_rate` for the lossy codecs (64 kbps by default).

    `streaming=False` makes a better file where the end must be known: WAV with true sizes, MP3 with its
    Info frame (exact duration, gapless), FLAC with total samples and MD5, fixed up by `patches` after
    `finish()`. Either way the bytes come out as they are made: no encoder holds a whole file.
    """
    if fmt == "pcm":
        return _PcmEncoder(rate)
    if fmt == "ulaw":
        return _UlawEncoder(rate)
    if fmt == "wav":
        return _WavEncoder(streaming, rate)
    if fmt not in _CODECS:
        raise ValueError(f"unknown response format {fmt!r}; expected one of {', '.join(RESPONSE_FORMATS)}")
    return _AVEncoder(_CODECS[fmt], streaming, rate, bit_rate)
