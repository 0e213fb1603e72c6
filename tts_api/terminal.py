"""Progress for a person at a terminal: one bar redrawn in place, only when the stream is a TTY.

Programs decide with `is_terminal` and fall back to plain log lines otherwise (CI logs, pipes, files),
where carriage returns and escape codes would only be noise.
"""

from __future__ import annotations

import shutil
import time
from typing import TextIO

__all__ = ["ProgressBar", "is_terminal"]

REDRAW_EVERY_S = 0.1  # a bar redrawn more often only costs time and flickers


def is_terminal(stream: TextIO) -> bool:
    """True when `stream` is an interactive terminal (not a pipe, a file or a closed stream)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """`label [#########.........]  45%  detail  12.3 s`, redrawn in place on one terminal line.

    `update` as often as you like (it redraws at most every REDRAW_EVERY_S); `finish` draws 100 % and
    ends the line; `close` ends the line where the bar stands (before printing an error under it).
    """

    def __init__(self, label: str, stream: TextIO, *, width: int = 24) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.fraction = 0.0
        self.detail = ""
        self._drawn_at = 0.0
        self._open = False

    def update(self, fraction: float, detail: str | None = None) -> None:
        """Move to `fraction` (0..1) of the work, optionally with a new detail text."""
        self.fraction = min(1.0, max(0.0, fraction))
        if detail is not None:
            self.detail = detail
        now = time.monotonic()
        if now - self._drawn_at >= REDRAW_EVERY_S or detail is not None:
            self._draw(now)

    def finish(self, detail: str | None = None) -> None:
        self.fraction = 1.0
        if detail is not None:
            self.detail = detail
        self._draw(time.monotonic())
        self.close()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _draw(self, now: float) -> None:
        filled = round(self.fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        head = f"{self.label} [{bar}] {self.fraction:4.0%}"
        tail = f"{now - self.started:5.1f} s"
        room = shutil.get_terminal_size().columns - len(head) - len(tail) - 5
        detail = self.detail if len(self.detail) <= room else self.detail[: max(0, room - 1)] + "…"
        # \r returns to the line's start, \x1b[K erases what a longer previous line left behind.
        self.stream.write(f"\r{head}  {detail}  {tail}\x1b[K" if room > 0 else f"\r{head}  {tail}\x1b[K")
        self.stream.flush()
        self._drawn_at = now
        self._open = True
