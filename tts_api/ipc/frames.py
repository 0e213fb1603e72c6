"""The in-band protocol between the front process and a worker for one speech request.

LitServe streams whatever the worker yields and ends the HTTP body the same way whether the worker
finished or failed. So every item a worker yields is a frame: the request's private key, a kind
(start, audio, words, end, error), the monotonic time it was yielded, and a payload. A stream whose last
frame is not `end` was cut off; the timestamp measures how long the item took to reach the front. The
`start` frame names the worker process that took the request, so the front can fail the request
visibly if that process dies; an audio frame carries 16-bit PCM at the model's rate (the front encodes
it in the format its client asked for, front/encoding.py) and says how far into the audio its samples
reach, so the front can tell the worker how much its client has taken.
"""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import TTSError
from .workers import WorkerProcess

__all__ = ["TICKET_KEY", "Frame", "FrameError", "Ticket"]

# The key under which the front passes the ticket to the worker inside the request body.
TICKET_KEY = "_tts_ticket"
_MAGIC = b"\x00tts"
Kind = Literal["start", "audio", "words", "idle", "end", "error"]
_KINDS: dict[bytes, Kind] = {
    b"S": "start",
    b"A": "audio",
    b"W": "words",
    b"I": "idle",
    b"E": "end",
    b"X": "error",
}
_CODES = {kind: code for code, kind in _KINDS.items()}
_TIME = struct.Struct("<d")
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class FrameError(ValueError):
    """Raised when an item from a worker is not a frame of the expected request."""


@dataclass(frozen=True)
class Frame:
    kind: Kind
    # time.monotonic() when the worker yielded it: the clock is the machine's, shared by every process, and
    # no wall-clock step moves it
    sent_at: float
    payload: bytes

    def data(self) -> Any:
        """The JSON payload of a start, words, end or error frame."""
        return json.loads(self.payload)

    def worker(self) -> WorkerProcess:
        """The worker process a start frame names."""
        data = self.data()
        return WorkerProcess(int(data["pid"]), float(data["started"]))

    @property
    def audio(self) -> bytes:
        """An audio frame's samples: 16-bit little-endian mono PCM at the model's rate."""
        return self.payload[_TIME.size :]

    @property
    def audio_end_s(self) -> float:
        """How many seconds into the response's audio an audio frame's bytes reach."""
        (seconds,) = _TIME.unpack_from(self.payload)
        return float(seconds)

    def error(self) -> TTSError:
        """The error a worker reported, rebuilt with its status, OpenAI fields and headers."""
        data = self.data()
        fields = data.get("error", {})
        return TTSError(
            str(fields.get("message", "speech synthesis failed")),
            param=fields.get("param"),
            code=fields.get("code"),
            type=fields.get("type"),
            status=int(data.get("status", 500)),
            headers={str(k): str(v) for k, v in dict(data.get("headers") or {}).items()},
        )


@dataclass(frozen=True)
class Ticket:
    """Identity of one speech request as it crosses from the front to a worker."""

    request_id: str  # shown to the client (X-Request-Id) and in logs; may come from the client
    key: str  # server-generated and unique: names the request in the cancel board and in frames
    live: bool = False  # its text grows while it is spoken: more comes through the board (voice agents)

    @classmethod
    def issue(cls, client_request_id: str | None = None, *, live: bool = False) -> Ticket:
        key = uuid.uuid4().hex
        if client_request_id and _CLIENT_REQUEST_ID.fullmatch(client_request_id):
            return cls(request_id=client_request_id, key=key, live=live)
        return cls(request_id=f"req_{key}", key=key, live=live)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Ticket:
        if not isinstance(data, dict) or not {"request_id", "key"} <= data.keys():
            raise ValueError(f"malformed ticket {data!r}")
        return cls(request_id=str(data["request_id"]), key=str(data["key"]), live=bool(data.get("live")))

    def _frame(self, kind: Kind, payload: bytes) -> bytes:
        return _MAGIC + self.key.encode() + _CODES[kind] + _TIME.pack(time.monotonic()) + payload

    def start_frame(self, worker: WorkerProcess) -> bytes:
        """The first frame: which worker process has the request (pid and start mark)."""
        return self._frame("start", json.dumps({"pid": worker.pid, "started": worker.started}).encode())

    def audio_frame(self, pcm: bytes, *, audio_end_s: float) -> bytes:
        """16-bit PCM samples (little-endian, the model's rate) that reach `audio_end_s` seconds into the
        response."""
        return self._frame("audio", _TIME.pack(audio_end_s) + pcm)

    def words_frame(self, words: list[dict[str, Any]]) -> bytes:
        """Word timestamps of the audio frames just sent."""
        return self._frame("words", json.dumps(words).encode())

    def idle_frame(self) -> bytes:
        """A live stream has spoken everything its client declared complete, and waits for text."""
        return self._frame("idle", b"")

    def end_frame(self, **stats: Any) -> bytes:
        """The last frame of a stream that completed."""
        return self._frame("end", json.dumps(stats).encode())

    def error_frame(self, error: TTSError) -> bytes:
        """The last frame of a stream that failed, carrying what the client should see (its status, body
        and headers: a draining worker's 503 keeps its Retry-After)."""
        payload = {"status": error.status, "headers": error.headers(), **error.body()}
        return self._frame("error", json.dumps(payload).encode())

    def parse(self, item: bytes) -> Frame:
        """Decode one item this request's worker yielded; FrameError if it is not one."""
        head = _MAGIC + self.key.encode()
        body = len(head) + 1 + _TIME.size
        if len(item) < body or not item.startswith(head) or item[len(head) : len(head) + 1] not in _KINDS:
            raise FrameError(
                f"request {self.request_id}: the worker sent an item that is not one of its frames"
            )
        (sent_at,) = _TIME.unpack_from(item, len(head) + 1)
        frame = Frame(_KINDS[item[len(head) : len(head) + 1]], sent_at, item[body:])
        if frame.kind == "audio" and (len(frame.payload) < _TIME.size or len(frame.audio) % 2):
            raise FrameError(f"request {self.request_id}: the worker sent an audio frame of broken samples")
        return frame
