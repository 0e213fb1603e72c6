"""tts_api/encoders.py: every format decodes to the right length, streams, releases, and isolates."""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
import pytest

from tts_api.encoders import Patch, apply_patches, open_encoder, to_pcm16, to_ulaw
from tts_api.formats import MEDIA_TYPES, RESPONSE_FORMATS, SAMPLE_RATE, ResponseFormat

LOSSLESS: tuple[ResponseFormat, ...] = ("pcm", "wav", "flac")
LOSSY: tuple[ResponseFormat, ...] = ("mp3", "opus", "aac", "ulaw")
# Uneven chunks, 0.3 s + 1.2 s + 0.8 s = 2.3 s, like a small first chunk followed by bigger ones.
CHUNK_SAMPLES = (7_200, 28_800, 19_200)
TOTAL_SAMPLES = sum(CHUNK_SAMPLES)

# Decoded length = frame * ceil((n + delay) / frame), in 24 kHz samples, measured with av 18.1.0.
#  mp3 streamed: no Info frame, so the decoder keeps LAME's 576 + FFmpeg's 529 delay samples and
#    the padding up to a whole 576-sample MPEG-2 frame. (When fewer than ~47 samples of room are
#    left in the last frame LAME emits one more frame, and the file form below keeps up to 46 extra
#    samples; CHUNK_SAMPLES stays clear of that.)
#  mp3 file: the Info frame carries delay and padding, and FFmpeg trims both: exact.
#  aac: ADTS cannot signal the 1024 priming samples; output is whole 1024-sample frames.
#  opus: Ogg pre-skip and the last page's granule position trim it exactly (decoded at 48 kHz).
#  pcm, wav, flac: exact.
DELAY_AND_FRAME: dict[tuple[ResponseFormat, bool], tuple[int, int]] = {
    ("mp3", True): (1105, 576),
    ("aac", True): (1024, 1024),
    ("aac", False): (1024, 1024),
}


def expected_decoded_samples(fmt: ResponseFormat, streaming: bool, n: int) -> int:
    delay, frame = DELAY_AND_FRAME.get((fmt, streaming), (0, 1))
    return frame * math.ceil((n + delay) / frame)


def tone(freq: float, n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    t = np.arange(n) / SAMPLE_RATE
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.6 * np.sin(2 * np.pi * freq * t) + 0.02 * noise).astype(np.float32)


def chunks_of(signal: npt.NDArray[np.float32]) -> list[npt.NDArray[np.floating]]:
    """Split `signal` into CHUNK_SAMPLES; the middle chunk is float64 with NaN and out-of-range values."""
    a, b, _ = CHUNK_SAMPLES
    middle = signal[a : a + b].astype(np.float64)
    middle[100] = np.nan
    middle[200:210] = 1.7
    middle[300:310] = -4.0
    return [signal[:a], middle, signal[a + b :]]


def encode_pieces(
    fmt: ResponseFormat, streaming: bool, chunks: list[npt.NDArray[np.floating]]
) -> tuple[list[bytes], list[Patch]]:
    """What each write() and the final finish() gave, and the patches a file's finish() left."""
    with open_encoder(fmt, streaming=streaming) as encoder:
        pieces = [encoder.write(chunk) for chunk in chunks] + [encoder.finish()]
        return pieces, encoder.patches


def encode(fmt: ResponseFormat, streaming: bool, chunks: list[npt.NDArray[np.floating]]) -> bytes:
    """The whole output, with a file's patches written in (as the server's front does)."""
    pieces, patches = encode_pieces(fmt, streaming, chunks)
    return apply_patches(b"".join(pieces), patches)


@dataclass
class Decoded:
    samples: npt.NDArray[np.generic]  # 1-D, in the decoder's own sample type
    rate: int
    channels: int


def decode(data: bytes, fmt: ResponseFormat, rate: int = SAMPLE_RATE) -> Decoded:
    if fmt == "pcm":
        return Decoded(np.frombuffer(data, dtype="<i2"), rate, 1)
    options = {"sample_rate": str(rate), "ch_layout": "mono"} if fmt == "ulaw" else {}
    with av.open(
        io.BytesIO(data), mode="r", format="mulaw" if fmt == "ulaw" else None, options=options
    ) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    return Decoded(np.concatenate(frames) if frames else np.zeros(0), rate, channels)


def pcm16(signal: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    return np.frombuffer(to_pcm16(signal), dtype="<i2")


def correlation(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n].astype(np.float64), b[:n].astype(np.float64))[0, 1])


SIGNAL = tone(440.0, TOTAL_SAMPLES)
BOTH_MODES = pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "file"])


def test_formats_and_media_types_cover_the_same_set() -> None:
    assert RESPONSE_FORMATS == ("mp3", "opus", "aac", "flac", "wav", "pcm", "ulaw")
    assert set(MEDIA_TYPES) == set(RESPONSE_FORMATS)
    assert MEDIA_TYPES["pcm"] == "audio/pcm; rate=24000; channels=1"
    assert MEDIA_TYPES["opus"] == "audio/ogg; codecs=opus"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, 0),
        (0.25, 8192),
        (-0.25, -8192),
        (1.0, 32767),
        (-1.0, -32767),
        (1.5, 32767),
        (-7.0, -32767),
        (np.nan, 0),
        (np.inf, 32767),
        (-np.inf, -32767),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_pcm16_scales_clips_and_silences_nan(value: float, expected: int, dtype: type) -> None:
    data = to_pcm16(np.array([value, 0.5], dtype=dtype))
    assert data == struct.pack("<hh", expected, 16384)


def test_to_pcm16_of_nothing_is_empty() -> None:
    assert to_pcm16(np.zeros(0, dtype=np.float32)) == b""


@BOTH_MODES
@pytest.mark.parametrize("fmt", RESPONSE_FORMATS)
def test_decoded_duration_matches_the_input(fmt: ResponseFormat, streaming: bool) -> None:
    decoded = decode(encode(fmt, streaming, chunks_of(SIGNAL)), fmt)

    assert decoded.channels == 1
    # Opus decoders always output 48 kHz; every other format keeps the model's 24 kHz.
    assert decoded.rate == (48_000 if fmt == "opus" else SAMPLE_RATE)
    assert decoded.samples.size * SAMPLE_RATE == (
        expected_decoded_samples(fmt, streaming, TOTAL_SAMPLES) * decoded.rate
    )


@BOTH_MODES
@pytest.mark.parametrize("fmt", LOSSLESS)
def test_lossless_formats_round_trip_exactly(fmt: ResponseFormat, streaming: bool) -> None:
    chunks = chunks_of(SIGNAL)
    decoded = decode(encode(fmt, streaming, chunks), fmt)

    expected = np.concatenate([pcm16(chunk) for chunk in chunks])
    assert decoded.samples.dtype == np.int16
    np.testing.assert_array_equal(decoded.samples, expected)


@BOTH_MODES
@pytest.mark.parametrize("fmt", LOSSY)
def test_lossy_formats_keep_the_signal(fmt: ResponseFormat, streaming: bool) -> None:
    decoded = decode(encode(fmt, streaming, [SIGNAL]), fmt)

    # Compare at 24 kHz past the leading delay, where the signal is a steady 440 Hz tone.
    samples = decoded.samples[:: decoded.rate // SAMPLE_RATE]
    delay, _ = DELAY_AND_FRAME.get((fmt, streaming), (0, 1))
    assert correlation(samples[delay + 2400 :], SIGNAL[2400:]) > 0.95


def test_streamed_wav_header_says_unknown_length() -> None:
    data = encode("wav", True, [SIGNAL])

    riff, riff_size, wave_id, data_id, data_size = struct.unpack("<4sI4s24x4sI", data[:44])
    assert (riff, wave_id, data_id) == (b"RIFF", b"WAVE", b"data")
    assert riff_size == data_size == 0xFFFFFFFF
    assert data[44:] == to_pcm16(SIGNAL)


def test_wav_file_has_true_sizes_and_reads_with_the_stdlib() -> None:
    data = encode("wav", False, chunks_of(SIGNAL))

    _, riff_size, _, _, data_size = struct.unpack("<4sI4s24x4sI", data[:44])
    assert (riff_size, data_size) == (len(data) - 8, TOTAL_SAMPLES * 2)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.getnframes() == TOTAL_SAMPLES


@pytest.mark.parametrize(("streaming", "total"), [(True, 0), (False, TOTAL_SAMPLES)])
def test_flac_file_records_its_length_and_a_stream_says_unknown(streaming: bool, total: int) -> None:
    data = encode("flac", streaming, chunks_of(SIGNAL))

    assert data[:4] == b"fLaC"
    streaminfo = data[8:42]
    # STREAMINFO: 36-bit total sample count after rate, channels and bits; 0 means unknown.
    assert int.from_bytes(streaminfo[13:18], "big") & ((1 << 36) - 1) == total


@pytest.mark.parametrize("fmt", RESPONSE_FORMATS)
def test_a_file_comes_out_as_it_is_made_and_only_its_header_is_fixed_at_the_end(fmt: ResponseFormat) -> None:
    """No encoder holds a whole file (memory per request must not grow with its length): a file's bytes
    are handed out by each write, like a stream's, and what the end fixes is a few header bytes."""
    chunks = [SIGNAL] * 8  # 18 s
    pieces, patches = encode_pieces(fmt, False, chunks)
    whole = sum(map(len, pieces))
    assert all(pieces[1:-1]) and max(map(len, pieces)) < whole / 4
    assert len(pieces[-1]) < whole / 8
    assert sum(len(patch) for _, patch in patches) <= 256
    assert all(offset + len(patch) <= 256 for offset, patch in patches)  # the header, at the start
    if fmt in ("wav", "mp3", "flac"):  # the formats whose header says how long the file is
        assert patches


@pytest.mark.parametrize("fmt", RESPONSE_FORMATS)
def test_first_write_already_carries_most_of_its_audio(fmt: ResponseFormat) -> None:
    n = SAMPLE_RATE // 2
    with open_encoder(fmt) as encoder:
        first = encoder.write(SIGNAL[:n])

    assert first
    # Each codec holds back at most ~0.15 s (frame lookahead, the Ogg page being filled).
    decoded = decode(first, fmt)
    assert decoded.samples.size * SAMPLE_RATE >= 0.7 * n * decoded.rate


@pytest.mark.parametrize("write_empty_chunk", [True, False], ids=["empty-write", "no-write"])
@BOTH_MODES
@pytest.mark.parametrize("fmt", RESPONSE_FORMATS)
def test_nothing_written_still_gives_a_valid_file(
    fmt: ResponseFormat, streaming: bool, write_empty_chunk: bool
) -> None:
    chunks = [np.zeros(0, dtype=np.float32)] if write_empty_chunk else []
    data = encode(fmt, streaming, chunks)

    if fmt in ("pcm", "ulaw"):  # raw: no header, nothing at all
        assert data == b""
        return
    decoded = decode(data, fmt)
    assert decoded.channels == 1
    if fmt in LOSSLESS:
        assert decoded.samples.size == 0
    else:
        # No empty MP3/ADTS/Ogg Opus opens in decoders; the encoder writes a tiny silent one instead.
        assert 0 < decoded.samples.size * SAMPLE_RATE <= 2048 * decoded.rate
        assert np.max(np.abs(decoded.samples)) < 1e-3


@pytest.mark.parametrize("fmt", RESPONSE_FORMATS)
def test_close_is_safe_whenever_the_request_ends(fmt: ResponseFormat) -> None:
    mid_stream = open_encoder(fmt)
    mid_stream.write(SIGNAL[:4800])
    mid_stream.close()
    mid_stream.close()

    finished = open_encoder(fmt)
    finished.write(SIGNAL[:4800])
    finished.finish()
    finished.close()

    with open_encoder(fmt, streaming=False) as scoped:
        scoped.write(SIGNAL[:4800])

    for closed in (mid_stream, finished, scoped):
        with pytest.raises(ValueError, match="closed"):
            closed.write(SIGNAL[:10])
        with pytest.raises(ValueError, match="closed"):
            closed.finish()


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="'ogg'"):
        open_encoder("ogg")  # type: ignore[arg-type]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_abandoned_encoders_leave_no_open_files() -> None:
    chunk = SIGNAL[:2400]
    for fmt in RESPONSE_FORMATS:  # the first of each warms up lazily loaded libraries
        open_encoder(fmt).close()
    baseline = len(os.listdir("/proc/self/fd"))

    for fmt in RESPONSE_FORMATS:
        for _ in range(200):
            encoder = open_encoder(fmt)
            encoder.write(chunk)
            encoder.close()

    assert len(os.listdir("/proc/self/fd")) == baseline


def test_concurrent_encoders_never_mix_their_audio() -> None:
    n = SAMPLE_RATE  # 1 s each keeps six threads times four rounds quick
    signals = [tone(freq, n, seed) for seed, freq in enumerate((220.0, 330.0, 470.0, 610.0, 750.0, 890.0))]
    # Lossy references are the same signals encoded alone; the encoders are deterministic.
    alone = {
        (fmt, i): decode(encode(fmt, True, [s[:9000], s[9000:]]), fmt).samples
        for fmt in LOSSY
        for i, s in enumerate(signals)
    }
    start = threading.Barrier(len(RESPONSE_FORMATS))

    def run(fmt: ResponseFormat, i: int) -> bytes:
        start.wait()
        return encode(fmt, True, [signals[i][:9000], signals[i][9000:]])

    with ThreadPoolExecutor(max_workers=len(RESPONSE_FORMATS)) as pool:
        for round_ in range(4):
            # Each round hands every format a different signal.
            jobs = {
                (fmt, (k + round_) % len(signals)): pool.submit(run, fmt, (k + round_) % len(signals))
                for k, fmt in enumerate(RESPONSE_FORMATS)
            }
            for (fmt, i), job in jobs.items():
                decoded = decode(job.result(timeout=60), fmt)
                if fmt in LOSSLESS:
                    np.testing.assert_array_equal(decoded.samples, pcm16(signals[i]))
                else:
                    assert correlation(decoded.samples, alone[(fmt, i)]) > 0.999


def test_mu_law_is_the_reference_coders_for_every_sample() -> None:
    audioop = pytest.importorskip("audioop")  # the stdlib's G.711 coder, up to Python 3.12
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert to_ulaw(every) == audioop.lin2ulaw(every.tobytes(), 2)


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [
        ("pcm", 8_000),
        ("pcm", 44_100),
        ("ulaw", 8_000),
        ("wav", 16_000),
        ("mp3", 22_050),
        ("opus", 48_000),
        ("flac", 32_000),
    ],
)
def test_a_rate_resamples_the_models_24_khz_in_one_piece(fmt: ResponseFormat, rate: int) -> None:
    """Telephony wants 8 kHz, ElevenLabs' clients ask for pcm_16000 or mp3_22050_32: the audio keeps its
    length and its pitch across chunk joins (one resampler per request carries its state over)."""
    chunks = [tone(440.0, 7_200), tone(440.0, 28_800)]  # joined in phase: one 440 Hz tone, 1.5 s
    whole = np.concatenate(chunks)
    with open_encoder(fmt, streaming=False, rate=rate) as encoder:
        pieces = [encoder.write(chunk) for chunk in chunks] + [encoder.finish()]
        data = apply_patches(b"".join(pieces), encoder.patches)
    decoded = decode(data, fmt, rate)
    assert decoded.rate == (48_000 if fmt == "opus" else rate)
    seconds = decoded.samples.size / decoded.rate
    assert abs(seconds - whole.size / SAMPLE_RATE) < 0.08  # codec padding at most
    spectrum = np.abs(np.fft.rfft(decoded.samples.astype(np.float64)))
    assert abs(np.argmax(spectrum) * decoded.rate / decoded.samples.size - 440.0) < 5.0
