"""The stream board: every admitted speech request, shared by the HTTP processes, the workers and main.

An entry holds one of `max_pending` places from admission to the end of its request. Who ends it:
- the worker closes it when the job ends, however it ends (`close`);
- the front's Lease (front/lease.py) closes it when no worker will: LitServe refused the request, the
  worker's end frame arrived, the worker died while the front watched, or an admission answered after
  its caller gave up; when the client leaves first, it marks the entry cancelled (`cancel`) so that the
  worker stops before its next chunk and closes it;
- the board itself closes the entry of a worker that died (`reap`, called by main every second: the
  front names each entry's worker from its start frame with `claim`), since after a client left nobody
  else is watching that worker.
Closing twice is harmless, a cancel only marks an entry still open, and an entry that is not on the board
reads as `gone`, which a worker treats like a cancel: the board is empty whenever no request is in flight.
No entry is closed for its age: a stream may rightly last for hours, and a client too slow to take its
audio is cut by its HTTP process (front/readrate.py), which then cancels its entry.

A request opened with a queue-wait bound (`open(..., max_wait_s=...)`: the speech route's) counts as
waiting until its first audio; the board measures how fast such requests start (pace.py) and answers
`behind` to a newcomer that would wait longer than its bound, so that it hears 503 at once instead of
after the bound.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from .pace import StartPace
from .workers import WorkerProcess

__all__ = ["Admission", "CancelReason", "StreamBoard", "StreamState"]

Admission = Literal["admitted", "full", "draining", "behind"]
CancelReason = Literal["client", "idle", "slow", "queued", "shutdown", "failed"]


@dataclass(frozen=True)
class StreamState:
    """One entry as a worker sees it."""

    status: Literal["open", "cancelled", "gone"]
    reason: CancelReason | None = None  # why it was cancelled
    delivered_s: float = 0.0  # audio seconds the client has taken
    # A live stream's text since the last take (`poll(..., take=...)`), whether the client said it is
    # complete (a flush), and whether no more will come.
    text: str = ""
    flush: bool = False
    ended: bool = False
    fed_at: float | None = None  # when the first of `text` (or the flush) came (monotonic, system-wide)

    @property
    def stopped(self) -> bool:
        return self.status != "open"


_GONE = StreamState("gone")


@dataclass
class _Entry:
    delivered_s: float = 0.0
    reason: CancelReason | None = None
    worker: WorkerProcess | None = None  # the process synthesizing it, once the front knows
    inbox: list[str] = field(default_factory=list)  # a live stream's text, not yet taken by its worker
    flush: bool = False
    ended: bool = False
    fed_at: float | None = None  # when the oldest of the inbox (or the flush) came
    queued: bool = False  # opened with a queue-wait bound, and no audio yet

    @property
    def waiting(self) -> bool:
        return self.queued and self.reason is None


class StreamBoard:
    """Request key -> entry, for the requests in flight. Lives in the manager process.

    Every method is one round trip from a client process and atomic under the lock; every method but
    `open` leaves a key that is not on the board alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._draining = False
        self._calls: Counter[str] = Counter()  # round trips served, by call (what load the board takes)
        self._pace = StartPace()

    def open(self, key: str, limit: int, max_wait_s: float = 0.0) -> Admission:
        """Register a request about to be queued, unless `limit` are open, the server is draining, or
        (`max_wait_s` > 0) requests are waiting and the measured pace says it would wait longer than that."""
        now = time.monotonic()
        with self._lock:
            self._calls["open"] += 1
            if self._draining:
                return "draining"
            if len(self._entries) >= limit:
                return "full"
            if max_wait_s > 0:
                waiting = sum(e.waiting for e in self._entries.values())
                if not waiting:
                    self._pace.backlog(now)
                elif (wait_s := self._pace.wait_s(now, waiting)) is not None and wait_s > max_wait_s:
                    return "behind"
            self._entries[key] = _Entry(queued=max_wait_s > 0)
            return "admitted"

    def wait_estimate(self) -> float | None:
        """About how long a request queued now would wait for its first audio (None: not measured yet)."""
        with self._lock:
            self._calls["wait_estimate"] += 1
            return self._pace.wait_s(time.monotonic(), sum(e.waiting for e in self._entries.values()))

    def claim(self, key: str, worker: WorkerProcess) -> None:
        """`worker` has taken this request: if it dies, `reap` closes the entry."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.worker = worker

    def cancel(self, key: str, reason: CancelReason = "client") -> bool:
        """Mark an open request cancelled; False if it already ended (nothing is left behind)."""
        with self._lock:
            self._calls["cancel"] += 1
            entry = self._entries.get(key)
            if entry is None:
                return False
            entry.reason = entry.reason or reason
            return True

    def delivered(self, key: str, audio_s: float) -> None:
        """The client has taken `audio_s` seconds of this request's audio."""
        with self._lock:
            self._calls["delivered"] += 1
            entry = self._entries.get(key)
            if entry is None:
                return
            if entry.queued and audio_s > 0:
                entry.queued = False
                self._pace.started(time.monotonic())
            entry.delivered_s = max(entry.delivered_s, audio_s)

    def feed(self, key: str, text: str, *, flush: bool = False, end: bool = False) -> bool:
        """More text for a live stream, for its worker's next take; False if the stream has ended or was
        cancelled (nothing is kept)."""
        with self._lock:
            self._calls["feed"] += 1
            entry = self._entries.get(key)
            if entry is None or entry.reason is not None or entry.ended:
                return False
            if entry.fed_at is None and (text or flush or end):
                entry.fed_at = time.monotonic()
            if text:
                entry.inbox.append(text)
            entry.flush = entry.flush or flush or end
            entry.ended = end
            return True

    def poll(self, keys: list[str], take: list[str] | None = None) -> dict[str, StreamState]:
        """The state of each of `keys` (one round trip for all of a worker's streams); for the keys in
        `take`, the live text fed since the last take comes along, and leaves the board."""
        taking = set(take or ())
        with self._lock:
            self._calls["poll"] += 1
            return {key: self._state(key, key in taking) for key in keys}

    def _state(self, key: str, take: bool = False) -> StreamState:
        entry = self._entries.get(key)
        if entry is None:
            return _GONE
        status: Literal["open", "cancelled"] = "open" if entry.reason is None else "cancelled"
        if not take or not (entry.inbox or entry.flush):
            return StreamState(status, entry.reason, entry.delivered_s, ended=take and entry.ended)
        text, flush, fed_at = "".join(entry.inbox), entry.flush, entry.fed_at
        entry.inbox.clear()
        entry.flush, entry.fed_at = False, None
        return StreamState(status, entry.reason, entry.delivered_s, text, flush, entry.ended, fed_at)

    def close(self, key: str) -> None:
        """Forget a request whose job has ended (a no-op if it is already gone)."""
        with self._lock:
            self._calls["close"] += 1
            self._entries.pop(key, None)

    def reap(self) -> int:
        """Close the entries whose worker process has died; return how many."""
        with self._lock:
            workers = {e.worker for e in self._entries.values() if e.worker is not None}
        dead = {w for w in workers if not w.alive()}  # outside the lock: it reads /proc
        if not dead:
            return 0
        with self._lock:
            keys = [k for k, e in self._entries.items() if e.worker in dead]
            for key in keys:
                del self._entries[key]
            return len(keys)

    def size(self) -> int:
        with self._lock:
            self._calls["size"] += 1
            return len(self._entries)

    def drain(self) -> None:
        """Refuse every new request from now on (shutdown)."""
        with self._lock:
            self._calls["drain"] += 1
            self._draining = True

    def draining(self) -> bool:
        with self._lock:
            self._calls["draining"] += 1
            return self._draining

    def cancel_all(self, reason: CancelReason) -> int:
        """Cancel every open request; return how many."""
        with self._lock:
            self._calls["cancel_all"] += 1
            for entry in self._entries.values():
                entry.reason = entry.reason or reason
            return len(self._entries)

    def calls(self) -> dict[str, int]:
        """Round trips served so far, by call."""
        with self._lock:
            return dict(self._calls)
