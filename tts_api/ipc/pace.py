"""How fast the server starts the requests it has queued: the wait a newcomer would face, measured.

A request starts when its first audio is synthesized. Each start is timed from the later of its own
admission and the start before it, so a server that starts requests as they come measures its first-audio
latency, and a backlogged one the interval between starts. A newcomer behind `waiting` requests then
waits about `(waiting + 1)` such intervals. Nothing here is tuned to a machine: a fast server and a slow
one each measure their own pace.
"""

from __future__ import annotations

__all__ = ["StartPace"]

WEIGHT = 0.25  # of the newest interval in the running mean: a change of load shows within a few starts


class StartPace:
    """See the module docstring. `started` records a start, `wait_s` estimates a newcomer's wait."""

    def __init__(self) -> None:
        self.interval_s: float | None = None
        self._last_start: float | None = None

    def started(self, now: float, opened_at: float) -> None:
        """A request opened at `opened_at` started (its first audio) at `now` (both monotonic)."""
        since = opened_at if self._last_start is None else max(opened_at, self._last_start)
        interval = max(0.0, now - since)
        self.interval_s = (
            interval if self.interval_s is None else (1 - WEIGHT) * self.interval_s + WEIGHT * interval
        )
        self._last_start = max(now, self._last_start or now)

    def wait_s(self, waiting: int) -> float | None:
        """About how long a request queued behind `waiting` unstarted ones waits for its first audio; None
        before any start was measured."""
        return None if self.interval_s is None else (waiting + 1) * self.interval_s
