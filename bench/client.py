"""A timing HTTP/1.1 client for the speech route, and the server's /metrics as numbers.

Raw sockets rather than an HTTP library: the benchmark needs to know when the first body byte
arrived, and to walk away at a chosen moment (right after sending, or after the first audio) the
way a real client does, by closing the connection.
"""

from __future__ import annotations

import io
import json
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import av
import httpx
from prometheus_client.parser import text_string_to_metric_families

from .stats import Histogram

__all__ = ["SPEECH_PATH", "VOICE", "Exchange", "Metrics", "Stream", "audio_seconds", "speak"]

SPEECH_PATH = "/v1/audio/speech"
VOICE = "af_heart"
PCM_BYTES_PER_SECOND = 24_000 * 2  # s16le mono 24 kHz
SOCKET_TIMEOUT_S = 900.0  # the last of 8 queued long streams waits minutes for its first byte

Abandon = Literal["never", "after_send", "after_first_audio"]


@dataclass
class Exchange:
    """One request as the client saw it. Times are seconds from sending the request."""

    text: str
    response_format: str
    stream: bool = True
    status: int | None = None
    first_audio_s: float | None = None
    total_s: float | None = None
    body_bytes: int = 0
    audio_s: float | None = None
    abandoned: Abandon = "never"
    error: str | None = None
    started_at: float = 0.0  # time.monotonic() when sent
    server: dict[str, float | None] = field(default_factory=dict)  # per-request server metrics, when known

    def record(self) -> dict[str, Any]:
        """A JSON-ready copy; the text is replaced by its length."""
        data = asdict(self)
        data["chars"] = len(data.pop("text"))
        return data


class Stream:
    """A speech request on its own connection; read the body as it arrives, or close early."""

    def __init__(self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        parsed = urlparse(url)
        payload = json.dumps(body).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"POST {SPEECH_PATH} HTTP/1.1\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n{extra}\r\n"
        )
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=SOCKET_TIMEOUT_S)
        self.sock.sendall(head.encode() + payload)
        self._buffer = b""
        self.status: int | None = None
        self.headers: dict[str, str] = {}

    def _recv(self) -> bool:
        data = self.sock.recv(65536)
        self._buffer += data
        return bool(data)

    def read_head(self) -> int:
        """Block until the status line and headers arrived; return the status."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._recv():
                raise ConnectionError("the server closed the connection before answering")
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        return self.status

    def body(self):  # type: ignore[no-untyped-def]
        """Yield body bytes as they arrive (chunked or not); ConnectionError if the body is cut off."""
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            yield from self._plain_body(int(self.headers.get("content-length", -1)))
            return
        while True:
            while b"\r\n" not in self._buffer:
                if not self._recv():
                    raise ConnectionError("chunked body cut off: the server aborted the response")
            line, _, self._buffer = self._buffer.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                return
            remaining = size
            while remaining:
                if not self._buffer and not self._recv():
                    raise ConnectionError("chunked body cut off: the server aborted the response")
                piece, self._buffer = self._buffer[:remaining], self._buffer[remaining:]
                remaining -= len(piece)
                yield piece
            while len(self._buffer) < 2:
                if not self._recv():
                    raise ConnectionError("chunked body cut off: the server aborted the response")
            self._buffer = self._buffer[2:]

    def _plain_body(self, length: int):  # type: ignore[no-untyped-def]
        received = 0
        while length < 0 or received < length:
            if not self._buffer and not self._recv():
                if length >= 0:
                    raise ConnectionError(f"body cut off after {received} of {length} bytes")
                return
            received += len(self._buffer)
            yield self._buffer
            self._buffer = b""

    def close(self) -> None:
        self.sock.close()


def speech_body(text: str, response_format: str, *, stream: bool = True) -> dict[str, Any]:
    return {
        "model": "kokoro",
        "input": text,
        "voice": VOICE,
        "response_format": response_format,
        "stream": stream,
        "seed": 0,
    }


def speak(
    url: str,
    text: str,
    response_format: str = "pcm",
    *,
    stream: bool = True,
    abandon: Abandon = "never",
    keep_audio: bool = False,
) -> Exchange:
    """Send one speech request and time it; `abandon` closes the connection at that point."""
    exchange = Exchange(text, response_format, stream, abandoned=abandon)
    parts: list[bytes] = []
    exchange.started_at = started = time.monotonic()
    client: Stream | None = None
    try:
        client = Stream(url, speech_body(text, response_format, stream=stream))
        if abandon == "after_send":
            time.sleep(0.05)  # long enough for the server to read the request before the client leaves
            return exchange
        exchange.status = client.read_head()
        for piece in client.body():
            if exchange.first_audio_s is None:
                exchange.first_audio_s = time.monotonic() - started
            exchange.body_bytes += len(piece)
            if keep_audio or exchange.status != 200:
                parts.append(piece)
            if abandon == "after_first_audio":
                return exchange
        exchange.total_s = time.monotonic() - started
        if exchange.status != 200:
            exchange.error = f"HTTP {exchange.status}: {b''.join(parts)[:300].decode(errors='replace')}"
        else:
            exchange.audio_s = audio_seconds(
                response_format, b"".join(parts) if keep_audio else None, exchange
            )
    except (OSError, ValueError) as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            client.close()
    return exchange


def audio_seconds(response_format: str, data: bytes | None, exchange: Exchange) -> float | None:
    """Seconds of audio in a complete response: from the byte count for pcm, by decoding otherwise."""
    if response_format == "pcm":
        return exchange.body_bytes / PCM_BYTES_PER_SECOND
    if not data:
        return None
    samples = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate if samples else None


class Metrics:
    """Scrapes of a tts-api server's GET /metrics."""

    def __init__(self, url: str) -> None:
        self.url = url

    def scrape(self) -> dict[str, Any]:
        """{'name{label="v"}': value} per sample, totals under bare names, histograms under 'histograms'."""
        text = httpx.get(self.url + "/metrics", timeout=30).text
        values: dict[str, Any] = {}
        histograms: dict[str, Histogram] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if family.type == "histogram":
                    histogram = histograms.setdefault(family.name, {"buckets": [], "sum": 0.0, "count": 0.0})
                    if sample.name.endswith("_bucket"):
                        histogram["buckets"].append((float(sample.labels["le"]), sample.value))
                    elif sample.name.endswith("_sum"):
                        histogram["sum"] = sample.value
                    elif sample.name.endswith("_count"):
                        histogram["count"] = sample.value
                    continue
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
                if labels:  # and the total over the name's labels under the bare name
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
        values["histograms"] = histograms
        return values
