"""What each kind of worker measured of its speed at start-up, kept for the workers that replace it.

A worker that dies is replaced by LitServe; its successor runs on the same device with the same engine and
threads, so it takes the measured chunks instead of synthesizing the calibration texts again (about a third
of a worker's start-up): capacity comes back sooner. The cost model goes on learning from every chunk.
"""

from __future__ import annotations

__all__ = ["Calibrations", "Point"]

Point = tuple[int, float, float]  # characters, compute seconds, audio seconds


class Calibrations:
    """Measured chunks by worker kind (device, engine, threads); lives in the manager process."""

    def __init__(self) -> None:
        self._points: dict[str, list[Point]] = {}

    def get(self, kind: str) -> list[Point] | None:
        return self._points.get(kind)

    def put(self, kind: str, points: list[Point]) -> None:
        self._points.setdefault(kind, points)  # the first worker's: the others started beside it
