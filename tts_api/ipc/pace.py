"""How fast the server starts the requests it has queued: the wait a newcomer would face, measured.

A request starts when its first audio is synthesized. While requests wait, the starts since that backlog
formed (at most the last `WINDOW_S` of them) give the rate the queue moves at, and a newcomer behind
`waiting` requests waits about `(waiting + 1) / rate`. The rate is counted over time, not as intervals
between consecutive starts, because a batching worker starts many requests in one step: the gap before
such a step says nothing about how fast the queue drains. Nothing is estimated before `MIN_STARTS`
starts were seen in the backlog: the first start of a burst alone would make every request behind it
look as slow as the first. Nothing here is tuned to a machine: a fast server and a slow one each measure
their own rate.
"""

from __future__ import annotations

from collections import deque

__all__ = ["StartPace"]

MIN_STARTS = 8  # in this backlog, before its rate is trusted (a rate from fewer starts guesses)
WINDOW_S = 60.0  # the starts the rate is counted over: a change of load shows within this long


class StartPace:
    """See the module docstring. `backlog` marks a queue forming, `started` records a start, `wait_s`
    estimates a newcomer's wait. Times are monotonic seconds."""

    def __init__(self) -> None:
        self._since: float | None = None  # when the present backlog formed
        self._starts: deque[float] = deque()

    def backlog(self, now: float) -> None:
        """A request was queued while none waited: starts before now describe another queue."""
        self._since = now
        self._starts.clear()

    def started(self, now: float) -> None:
        """A queued request started (its first audio) at `now`."""
        if self._since is not None:
            self._starts.append(now)

    def wait_s(self, now: float, waiting: int) -> float | None:
        """About how long a request queued now behind `waiting` unstarted ones waits for its first audio;
        None while too few starts were seen in this backlog to tell."""
        while self._starts and self._starts[0] < now - WINDOW_S:
            self._starts.popleft()
        if self._since is None or len(self._starts) < MIN_STARTS:
            return None
        span = now - max(self._since, now - WINDOW_S)
        return (waiting + 1) * span / len(self._starts)
