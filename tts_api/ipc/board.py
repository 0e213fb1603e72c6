"""Which requests' clients went away: a board shared by the HTTP processes and the workers.

The front opens an entry before it queues a request (refusing it when too many are open) and marks
it cancelled when the client leaves; the worker checks it before the job and before every chunk,
then closes it when the job ends, however it ends. `cancel` only marks entries that are still open,
so a client that leaves after its job finished cannot leave a flag behind: the board is empty
whenever no request is in flight.
"""

from __future__ import annotations

import threading
import time

__all__ = ["MAX_ENTRY_AGE_S", "CancelBoard"]

# A safety net only: entries are closed by the worker. One left by a worker that died mid-job
# (the server then shuts down anyway) is dropped after this long.
MAX_ENTRY_AGE_S = 6 * 3600.0


class CancelBoard:
    """Request key -> cancelled?, for the requests in flight. Lives in a manager process.

    Every method is one round trip from a client process and atomic under the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: dict[str, float] = {}  # key -> monotonic time it was opened
        self._cancelled: set[str] = set()

    def open(self, key: str, limit: int) -> bool:
        """Register a request about to be queued; False (and nothing registered) if `limit` are open."""
        now = time.monotonic()
        with self._lock:
            for stale in [k for k, t in self._opened.items() if now - t > MAX_ENTRY_AGE_S]:
                self._drop(stale)
            if len(self._opened) >= limit:
                return False
            self._opened[key] = now
            return True

    def cancel(self, key: str) -> bool:
        """Mark an open request cancelled; False if it already ended (nothing is left behind)."""
        with self._lock:
            if key not in self._opened:
                return False
            self._cancelled.add(key)
            return True

    def is_cancelled(self, key: str) -> bool:
        with self._lock:
            return key in self._cancelled

    def close(self, key: str) -> None:
        """Forget a request whose job has ended."""
        with self._lock:
            self._drop(key)

    def size(self) -> int:
        with self._lock:
            return len(self._opened)

    def _drop(self, key: str) -> None:
        self._opened.pop(key, None)
        self._cancelled.discard(key)
