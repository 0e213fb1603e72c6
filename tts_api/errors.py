"""Errors a client can see, each with its HTTP status and OpenAI error shape.

TTSError                 500 server_error
├── InvalidRequest       400 invalid_request_error   (bad field value, bad JSON)
│   └── InputTooLong     413 invalid_request_error
├── NotFound             404 invalid_request_error
├── Overloaded           503 server_error            (with Retry-After: busy, or shutting down)
└── WorkerLost           503 server_error            (with Retry-After: the worker died mid-request)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "InputTooLong",
    "InvalidRequest",
    "NotFound",
    "Overloaded",
    "TTSError",
    "Unauthorized",
    "WorkerLost",
]


class TTSError(Exception):
    """Raised when a request fails in a way the client should be told about."""

    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self._headers = dict(headers or {})
        # Instance overrides, for an error rebuilt from what another process reported.
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI clients parse: `{"error": {message, type, param, code}}`."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """HTTP headers the response carries (`Retry-After`, `WWW-Authenticate`)."""
        return dict(self._headers)


class InvalidRequest(TTSError):
    """Raised when a field is missing, malformed or out of range."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class InputTooLong(InvalidRequest):
    """Raised when `input` is longer than the server's configured maximum."""

    status = 413
    code = "input_too_long"


class Unauthorized(TTSError):
    """Raised when the server requires an API key and the request has none or a wrong one."""

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "WWW-Authenticate": "Bearer"}


class NotFound(TTSError):
    """Raised for an unknown route or model id."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Overloaded(TTSError):
    """Raised when the server has no room for another request right now."""

    status = 503
    code = "server_overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after_s)}


class WorkerLost(Overloaded):
    """Raised when the worker process synthesizing a request died; a replacement is starting."""

    code = "worker_lost"
