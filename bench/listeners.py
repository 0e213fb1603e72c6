"""Listeners: pcm streams played by a model player that starts at the first byte, and runs of them.

A listener's first audio and the longest its player ran dry tell whether it was served well. A stream is
good when its first audio came within 3x a lone stream's (and never needs to come sooner than a floor: on
the emulated engine a lone stream's first audio takes milliseconds) and its player never ran dry for more
than 100 ms (the field's figure of merit). Runs: a burst (everyone at once), open-loop Poisson arrivals
(seeded: both policies hear the same arrivals), and cancellation under load.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from tts_api.synth.costs import TYPICAL_CHARS_PER_AUDIO_S

from .client import PCM_BYTES_PER_SECOND, VOICE, Stream
from .processes import Service

__all__ = [
    "Listener",
    "burst",
    "cancellation_under_load",
    "good_first_audio_s",
    "listen",
    "longest_underrun_s",
    "open_loop",
]

GOOD_FIRST_AUDIO_FACTOR = 3.0
GOOD_UNDERRUN_S = 0.1
LEAVE_AFTER_S = 2.0  # the leaver of `cancellation_under_load` leaves this long after its first audio
LEAVER_SPAN = 3.0  # its text holds this many times what the worker makes meanwhile


@dataclass
class Listener:
    """One stream as a player heard it. Times are seconds from sending the request."""

    chars: int
    sent_at: float = 0.0  # time.monotonic()
    status: int | None = None
    first_audio_s: float | None = None
    end_s: float | None = None
    audio_s: float = 0.0
    underrun_s: float = 0.0  # the longest the player waited once it had started
    complete: bool = False
    retry_after: str | None = None
    error: str | None = None
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (s since sent, audio s so far)

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("arrivals")
        return data


def listen(
    url: str, text: str, *, abandon_after_s: float | None = None, request_id: str | None = None
) -> Listener:
    """Stream `text` as pcm (unseeded: chunks adapt to load) and play it in a model player."""
    listener = Listener(len(text))
    listener.sent_at = started = time.monotonic()
    client: Stream | None = None
    body = {"model": "kokoro", "input": text, "voice": VOICE, "response_format": "pcm"}
    try:
        client = Stream(url, body, {"X-Request-Id": request_id} if request_id else None)
        listener.status = client.read_head()
        listener.retry_after = client.headers.get("retry-after")
        if listener.status != 200:
            listener.error = f"HTTP {listener.status}"
            return listener
        received = 0
        for piece in client.body():
            now = time.monotonic() - started
            received += len(piece)
            listener.arrivals.append((now, received / PCM_BYTES_PER_SECOND))
            if abandon_after_s is not None and now - listener.arrivals[0][0] >= abandon_after_s:
                break
        else:
            listener.complete = True
        listener.end_s = time.monotonic() - started
        listener.audio_s = received / PCM_BYTES_PER_SECOND
    except (OSError, ValueError) as exc:
        listener.error = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            client.close()
    _play(listener)
    return listener


def _play(listener: Listener) -> None:
    if listener.arrivals:
        listener.first_audio_s = listener.arrivals[0][0]
        listener.underrun_s = longest_underrun_s(listener.arrivals)


def longest_underrun_s(arrivals: Sequence[tuple[float, float]]) -> float:
    """The longest a player that starts at the first byte and stalls when it runs dry waits, given the
    arrivals (seconds, audio seconds received so far)."""
    if not arrivals:
        return 0.0
    runs_out = arrivals[0][0]  # wall time the buffered audio lasts until
    buffered = longest = 0.0
    for at, audio in arrivals:
        if at > runs_out and buffered > 0:
            longest = max(longest, at - runs_out)
            runs_out = at
        runs_out += audio - buffered
        buffered = audio
    return longest


def good_first_audio_s(lone_first_audio_s: float, floor_s: float = 0.0) -> float:
    """The latest a good stream's first audio may come."""
    return max(GOOD_FIRST_AUDIO_FACTOR * lone_first_audio_s, floor_s)


def _good(listener: Listener, bound_s: float) -> bool:
    return (
        listener.complete
        and listener.first_audio_s is not None
        and listener.first_audio_s <= bound_s
        and listener.underrun_s <= GOOD_UNDERRUN_S
    )


def _summary(listeners: list[Listener], bound_s: float, wall_s: float) -> dict[str, Any]:
    served = [x for x in listeners if x.status == 200]
    firsts = sorted(x.first_audio_s for x in served if x.first_audio_s is not None)

    def pct(q: float) -> float | None:
        return firsts[min(len(firsts) - 1, round(q * (len(firsts) - 1)))] if firsts else None

    audio = sum(x.audio_s for x in served)
    return {
        "streams": len(listeners),
        "served": len(served),
        "complete": sum(x.complete for x in served),
        "rejected_503": sum(x.status == 503 for x in listeners),
        "errors": sum(x.error is not None and x.status != 503 for x in listeners),
        "good": sum(_good(x, bound_s) for x in served),
        "good_first_audio_s": bound_s,
        "first_audio_s": {"p50": pct(0.5), "p95": pct(0.95), "max": firsts[-1] if firsts else None},
        "largest_underrun_s": max((x.underrun_s for x in served), default=None),
        "audio_s": audio,
        "wall_s": wall_s,
        "audio_s_per_s": audio / wall_s if wall_s > 0 else None,
        "listeners": [x.record() for x in listeners],
    }


def _together(url: str, texts: list[str]) -> tuple[list[Listener], float]:
    barrier = threading.Barrier(len(texts))

    def one(text: str) -> Listener:
        barrier.wait()
        return listen(url, text)

    started = time.monotonic()
    with ThreadPoolExecutor(len(texts)) as pool:
        listeners = list(pool.map(one, texts))
    last = max((x.sent_at + (x.end_s or 0.0) for x in listeners), default=started)
    return listeners, last - started


def burst(server: Service, texts: list[str], bound_s: float) -> dict[str, Any]:
    """Every text at once."""
    server.wait_idle()
    listeners, wall = _together(server.url, texts)
    return _summary(listeners, bound_s, wall)


def open_loop(
    server: Service, texts: list[str], rate_per_s: float, duration_s: float, bound_s: float, seed: int
) -> dict[str, Any]:
    """Poisson arrivals at `rate_per_s` for `duration_s`, each listener on its own thread; at least one,
    however late it comes (a slow worker's low rate could leave a short run with none, measuring nothing)."""
    server.wait_idle()
    rng = random.Random(seed)
    listeners: list[Listener] = []
    threads: list[threading.Thread] = []
    started = time.monotonic()
    at = rng.expovariate(rate_per_s)
    index = 0
    while at < duration_s or not threads:
        time.sleep(max(0.0, started + at - time.monotonic()))
        text = texts[index % len(texts)]
        index += 1

        def run(text: str = text) -> None:
            listeners.append(listen(server.url, text))

        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()
        at += rng.expovariate(rate_per_s)
    for thread in threads:
        thread.join()
    return _summary(listeners, bound_s, time.monotonic() - started)


def cancellation_under_load(server: Service, texts: list[str], audio_s_per_s: float) -> dict[str, Any]:
    """Three listeners; one leaves LEAVE_AFTER_S after its first audio. What did it cost after it left?

    The leaver's text is the texts joined, repeated until it holds LEAVER_SPAN times the audio the worker
    (`audio_s_per_s`, measured) makes in that time: mid-way when it leaves on any machine. (Joined once,
    the quick plan's ~22 s of audio can all be sent within the 2 s by the tiny model: nothing to cancel.)
    """
    server.wait_idle()
    request_id = f"bench-leaver-{time.monotonic_ns()}"
    joined = " ".join(texts)
    repeats = max(
        1, math.ceil(LEAVER_SPAN * audio_s_per_s * LEAVE_AFTER_S * TYPICAL_CHARS_PER_AUDIO_S / len(joined))
    )
    leaver_text, others = " ".join([joined] * repeats), texts[1:3]
    results: dict[str, Any] = {}

    def leaver() -> None:
        # Its request id tells its cancellation line apart in the server's log.
        results["leaver"] = listen(
            server.url, leaver_text, abandon_after_s=LEAVE_AFTER_S, request_id=request_id
        )

    threads = [threading.Thread(target=listen, args=(server.url, t)) for t in others]
    threads.append(threading.Thread(target=leaver))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.wait_idle()
    heard = results["leaver"].audio_s
    match = re.search(
        rf"request {re.escape(request_id)} cancelled while \w+: (\d+) chunks \(([\d.]+) s of audio\)",
        server.log(),
    )
    synthesized_s = float(match.group(2)) if match else None
    return {
        "heard_audio_s": heard,
        "synthesized_audio_s": synthesized_s,
        "chunks": int(match.group(1)) if match else None,
        "after_leaving_audio_s": None if synthesized_s is None else max(0.0, synthesized_s - heard),
    }
