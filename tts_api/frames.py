"""The in-band protocol between the front process and a worker for one speech request.

LitServe streams whatever the worker yields and ends the HTTP body the same way whether the
worker finished or failed. So the worker ends every stream with a control frame, `end` or
`error`, marked with a key only the front and that worker know; a stream without one was cut off.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from .errors import TTSError

__all__ = ["TICKET_KEY", "ControlFrame", "Ticket"]

# The key under which the front passes the ticket to the worker inside the request body.
TICKET_KEY = "_tts_ticket"
_CONTROL_PREFIX = b"\x00\x00tts-control:"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@dataclass(frozen=True)
class Ticket:
    """Identity of one speech request as it crosses from the front to a worker."""

    request_id: str  # shown to the client (X-Request-Id) and in logs; may come from the client
    key: str  # server-generated and unique: names the request in the cancel registry and frames

    @classmethod
    def issue(cls, client_request_id: str | None = None) -> Ticket:
        key = uuid.uuid4().hex
        if client_request_id and _CLIENT_REQUEST_ID.fullmatch(client_request_id):
            return cls(request_id=client_request_id, key=key)
        return cls(request_id=f"req_{key}", key=key)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Ticket:
        if not isinstance(data, dict) or not {"request_id", "key"} <= data.keys():
            raise ValueError(f"malformed ticket {data!r}")
        return cls(request_id=str(data["request_id"]), key=str(data["key"]))

    @property
    def _marker(self) -> bytes:
        return _CONTROL_PREFIX + self.key.encode() + b"\n"

    def end_frame(self, **stats: Any) -> bytes:
        """The last item of a stream that completed."""
        return self._marker + json.dumps({"type": "end", **stats}).encode()

    def error_frame(self, error: TTSError) -> bytes:
        """The last item of a stream that failed, carrying what the client should see."""
        payload = {"type": "error", "status": error.status, "error": error.body()["error"]}
        return self._marker + json.dumps(payload).encode()

    def control(self, item: bytes) -> ControlFrame | None:
        """The control frame in `item`, or None if `item` is audio."""
        marker = self._marker
        if not item.startswith(marker):
            return None
        return ControlFrame(json.loads(item[len(marker) :]))


@dataclass(frozen=True)
class ControlFrame:
    data: dict[str, Any]

    @property
    def is_end(self) -> bool:
        return self.data.get("type") == "end"

    def error(self) -> TTSError:
        """The error a worker reported, rebuilt with its status and OpenAI fields."""
        fields = self.data.get("error", {})
        return TTSError(
            str(fields.get("message", "speech synthesis failed")),
            param=fields.get("param"),
            code=fields.get("code"),
            type=fields.get("type"),
            status=int(self.data.get("status", 500)),
        )
