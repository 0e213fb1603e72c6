"""How fast a client takes its audio while the server has audio waiting for it: the floor a reader must keep.

A client that reads 1 KB/s never stalls a send for long (each one resumes as the socket drains a little), so
an idle timeout never fires, yet its stream keeps a place on the board for as long as it lasts. A slow
reader is told apart from a slow server by who waits: over the last `window_s`, the server waited on the
client (a send blocked on a full socket) for most of the time, and the client took less than `min_rate`
seconds of audio per second. A real-time player takes 1 audio-second per second once the server is ahead;
a client the server keeps waiting is never behind.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BLOCKED_SHARE", "ReadRate", "ReaderLimits"]

# The share of the window the server must have spent waiting on the client: a reader at real time whose
# server is barely ahead waits on the server part of the time, and is never measured against the floor.
BLOCKED_SHARE = 0.8


@dataclass(frozen=True)
class ReaderLimits:
    """What a streaming client must keep up: it is cut, and its synthesis cancelled, when it takes nothing
    for `idle_timeout_s`, or less than `min_read_rate` audio-seconds per second over `read_window_s` while
    the server waits on it (0: no floor)."""

    idle_timeout_s: float = 60.0
    min_read_rate: float = 0.5
    read_window_s: float = 30.0


class ReadRate:
    """See the module docstring. `blocked()`/`unblocked()` frame each wait on the client, `took(audio_s)`
    records how far into the audio the client has taken, `too_slow()` says whether to cut it."""

    def __init__(self, min_rate: float, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_rate, self.window_s, self._clock = min_rate, window_s, clock
        self._taken_s = 0.0
        self._blocked_s = 0.0  # time spent waiting on the client, sends that ended
        self._blocked_since: float | None = None
        # (time, audio taken, time blocked), oldest first: enough to look back one window.
        self._samples: deque[tuple[float, float, float]] = deque([(clock(), 0.0, 0.0)])

    def blocked(self) -> None:
        """A send started: until `unblocked`, the server waits on the client."""
        self._blocked_since = self._clock()

    def unblocked(self) -> None:
        if self._blocked_since is not None:
            self._blocked_s += self._clock() - self._blocked_since
            self._blocked_since = None

    def took(self, audio_s: float) -> None:
        """The client has taken the audio up to `audio_s` seconds into the response."""
        self._taken_s = max(self._taken_s, audio_s)
        self._sample(self._clock())

    def too_slow(self) -> bool:
        """Whether, over the last window, the server waited on the client most of the time and the client
        took audio slower than `min_rate`."""
        now = self._clock()
        self._sample(now)
        then, taken_then, blocked_then = self._samples[0]
        elapsed = now - then
        if elapsed < self.window_s:
            return False
        waited = self._blocked_total(now) - blocked_then
        return waited >= BLOCKED_SHARE * elapsed and self._taken_s - taken_then < self.min_rate * elapsed

    def _blocked_total(self, now: float) -> float:
        running = 0.0 if self._blocked_since is None else now - self._blocked_since
        return self._blocked_s + running

    def _sample(self, now: float) -> None:
        """Record now; forget samples the window no longer reaches (keeping the newest one before it)."""
        self._samples.append((now, self._taken_s, self._blocked_total(now)))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()
