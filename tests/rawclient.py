"""A raw HTTP/1.1 client that can walk away mid-response, as real clients do; a server that never answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlparse

import httpx
from prometheus_client.parser import text_string_to_metric_families


class RawRequest:
    """POST a JSON body and read the response as it arrives; `close()` is the client leaving."""

    def __init__(self, url: str, body: dict, headers: dict[str, str] | None = None) -> None:
        parsed = urlparse(url)
        payload = json.dumps(body).encode()
        lines = [f"POST {parsed.path} HTTP/1.1", f"Host: {parsed.netloc}", "Content-Type: application/json"]
        lines += [
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
            "",
            "",
        ]
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=120)
        self.sock.sendall("\r\n".join(lines).encode() + payload)
        self.received = b""

    def read_until_body(self, min_body_bytes: int = 1, timeout: float = 120.0) -> bytes:
        """Block until the headers and at least `min_body_bytes` of body have arrived (`timeout` in all)."""
        deadline = time.monotonic() + timeout
        while True:
            head, sep, body = self.received.partition(b"\r\n\r\n")
            if sep and len(body) >= min_body_bytes:
                return head
            if time.monotonic() > deadline:
                raise TimeoutError(f"no response body after {timeout} s; got {self.received[:300]!r}")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"server closed the connection; got {self.received[:300]!r}")
            self.received += chunk

    def close(self) -> None:
        self.sock.close()


def metrics(url: str) -> dict[str, float]:
    """The server's /metrics as {'name{label="v"}': value}, plus {'name': total} over a name's labels."""
    text = httpx.get(url + "/metrics", timeout=30).text
    values: dict[str, float] = {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
            if family.type != "histogram":
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return {**totals, **values}


def worker_logged(log: str, request_id: str) -> list[str]:
    """The lines a worker logged about `request_id` (its cancellation, say): traced, whatever the wording."""
    return [line for line in log.splitlines() if " inference-worker[" in line and request_id in line]


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def silent_server(answer: Literal["nothing", "close"]) -> Iterator[str]:
    """A TCP server on loopback that takes connections and never answers: it holds each one open
    ("nothing", a server whose queue is long) or reads the request and closes it ("close")."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if answer == "close":
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.close()

    thread = threading.Thread(target=serve, name="silent-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
