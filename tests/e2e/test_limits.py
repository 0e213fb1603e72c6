"""Bounds at every edge, through real servers: what a small request may cost, who holds a place and for how
long, and what happens when an HTTP server process dies.

- a request of at most 64 KB (pause tags that add up to an hour; one 50,000-letter word) grows no process
  of the server by more than 100 MB, and the default bounds refuse the hour of silence with a 413;
- eight whole 50,000-character FLAC files at once: every process stays under 256 MB (their bytes travel in
  pieces, and only a few header bytes are fixed at the end);
- 64 clients that read 1 KB/s hold every place, and give them back within the read window: a newcomer is
  served; a client that reads at real time beside them is never cut;
- a dead HTTP server process stops the whole server with exit code 1 and a log line that names it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from tests.rawclient import metrics, wait_for
from tests.servers import shared_server
from tts_api.processes import ServerProcess, wait_gone

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
MB = 1024 * 1024
BOARD = "tts_cancel_board_entries"
PAUSE_TAGS = "Hi. " + "[pause:10s]" * 360  # 3.6 KB that ask for an hour of silence
LONGEST_WORD = "a" * 50_000  # one word as long as the default input limit allows
RUN_ON = " ".join(["the quick brown fox jumps over the lazy dog"] * 21)  # no sentence end
STORY = " ".join(f"Sentence {i} of a long text that one client asks for as a whole file." for i in range(715))
READ_WINDOW_S = 5.0
SLOW_READERS = 64

# The tiny model, with bounds wide enough to let an hour of silence through: memory must stay bounded even
# then. One HTTP server process: the last test kills it.
bounded_server = shared_server(
    "bounded_server", "--max-pause", "3600", "--max-audio", "100000", "--api-servers", "1"
)
# Synthesis that costs nothing, so that the serving path alone is measured; every place can be taken.
emulated_limits_server = shared_server(
    "emulated_limits_server",
    "--engine",
    "emulated:100000:0",
    "--max-pending",
    str(SLOW_READERS),
    "--read-window",
    str(READ_WINDOW_S),
    "--idle-timeout",  # far beyond the test: only the read-rate floor may cut a slow reader
    "600",
)


@contextlib.contextmanager
def peak_rss(server: ServerProcess) -> Iterator[dict[int, float]]:
    """While the block runs, the largest resident size of each process of the server (bytes), sampled
    every 20 ms (and once before); filled in when the block ends."""
    peaks: dict[int, float] = {p.pid: p.memory_info().rss for p in server.tree()}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for process in server.tree():
                with contextlib.suppress(psutil.Error):
                    peaks[process.pid] = max(peaks.get(process.pid, 0.0), process.memory_info().rss)
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peaks
    finally:
        done.set()
        sampler.join()


@pytest.fixture(scope="module")
def working_set(bounded_server: ServerProcess) -> dict[int, float]:
    """The peak of each process while chunks of the largest size are made: what any request may use (the
    model's activations for the largest chunk; an idle worker hands its heap back, so every request grows it
    again by that much). Seeded, the text keeps to the lone-stream plan whatever this machine's speed; with
    no sentence end to cut at, its fifth chunk fills the cap (30, 60, 120, 240, 360 characters). A plain
    text's chunks, cut at sentences and sized by the worker's speed, peaked ~250 MB lower here and differ
    from machine to machine. Twice: the same request peaks tens of MB apart from one run to the next, as the
    allocator's pools fall."""
    largest = {"input": RUN_ON, "response_format": "pcm", "seed": 1}
    with peak_rss(bounded_server) as peaks:
        for _ in range(2):
            assert read_all(bounded_server.url, largest)[0] == 200
    return peaks


def _name(pid: int) -> str:
    with contextlib.suppress(psutil.Error):
        command = psutil.Process(pid).cmdline()
        joined = " ".join(command)
        return "worker" if "spawn_main" in joined else "server.py" if "server.py" in joined else joined[:40]
    return "gone"


def read_all(url: str, body: dict, timeout: float = 600, max_bytes: int | None = None) -> tuple[int, int]:
    """POST `body` and read the response to its end (or `max_bytes`, then leave), dropping it:
    (status, bytes)."""
    size = 0
    with httpx.stream("POST", url + SPEECH, json=body, timeout=timeout) as response:
        for chunk in response.iter_raw():
            size += len(chunk)
            if max_bytes is not None and size >= max_bytes:
                break
    return response.status_code, size


def test_the_default_bounds_refuse_an_hour_of_pause_tags_before_anything_is_queued(
    tiny_server: ServerProcess,
) -> None:
    response = httpx.post(tiny_server.url + SPEECH, json={"input": PAUSE_TAGS, "response_format": "pcm"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "pause_too_long" and "3600" in error["message"] and "300" in error["message"]
    # 30,000 numbers read at a quarter speed: over 4 h (within the 50,000 characters)
    slow = {"input": "123 " * 10_000, "speed": 0.25, "response_format": "pcm"}
    long = httpx.post(tiny_server.url + SPEECH, json=slow)
    assert long.status_code == 413 and long.json()["error"]["code"] == "audio_too_long"


@pytest.mark.parametrize(
    ("text", "fields", "max_bytes"),
    [
        (PAUSE_TAGS, {"response_format": "pcm"}, None),
        # Ten minutes of it as a whole MP3 (an hour takes the encoder half a minute here).
        (PAUSE_TAGS[:664], {"response_format": "mp3", "stream": False}, None),
        # Its plan is made whole at once; its chunks, each within the budget, one at a time: the first
        # minute of audio shows what it costs (all of it takes the tiny model many minutes).
        (LONGEST_WORD, {"response_format": "pcm"}, 60 * 48_000),
    ],
    ids=["pause-tags-streamed", "pause-tags-whole-mp3", "longest-word"],
)
def test_a_request_of_at_most_64_kb_grows_no_process_by_more_than_100_mb(
    bounded_server: ServerProcess,
    working_set: dict[int, float],
    text: str,
    fields: dict[str, object],
    max_bytes: int | None,
) -> None:
    """Growth beyond the working set of any request (`working_set`), against the peak while this one is
    made."""
    body = {"input": text, **fields}
    assert len(json.dumps(body)) <= 64 * 1024
    with peak_rss(bounded_server) as peaks:
        status, size = read_all(bounded_server.url, body, max_bytes=max_bytes)
    assert status == 200 and size > 0
    growth = {pid: peak - working_set.get(pid, 0.0) for pid, peak in peaks.items()}
    worst = max(growth.values())
    largest = sorted(growth.items(), key=lambda item: -item[1])[:3]
    assert worst <= 100 * MB, [f"{_name(pid)} ({pid}): {grown / MB:.0f} MB" for pid, grown in largest]


def test_eight_whole_flac_files_of_50000_characters_keep_every_process_under_256_mb(
    emulated_limits_server: ServerProcess,
) -> None:
    server = emulated_limits_server
    assert 49_000 < len(STORY) <= 50_000
    body = {"input": STORY, "response_format": "flac", "stream": False}
    results: list[tuple[int, int]] = []
    largest = 0.0
    done = threading.Event()

    def watch() -> None:
        nonlocal largest
        while not done.is_set():
            for process in server.tree():
                with contextlib.suppress(psutil.Error):
                    largest = max(largest, process.memory_info().rss)
            done.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        clients = [
            threading.Thread(target=lambda: results.append(read_all(server.url, body))) for _ in range(8)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(600)
    finally:
        done.set()
        watcher.join()
    assert [status for status, _ in results] == [200] * 8
    assert min(size for _, size in results) > 10 * MB  # an hour of audio each
    assert largest <= 256 * MB, f"a process reached {largest / MB:.0f} MB"


class SlowReaders:
    """Clients that read `rate` bytes per second each (a tiny receive buffer, so the kernel holds little),
    from one thread."""

    def __init__(self, url: str, body: dict, count: int, rate: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        payload = json.dumps(body).encode()
        head = f"POST {SPEECH} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.rate = rate
        self._ended: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.wait(1.0):
            for k, sock in enumerate(self.sockets):
                if k in self._ended:
                    continue
                try:
                    if not sock.recv(self.rate):
                        self._ended.add(k)
                except BlockingIOError:
                    pass
                except OSError:
                    self._ended.add(k)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def real_time_reader(url: str, body: dict, outcome: dict[str, object]) -> Callable[[], None]:
    """A client that takes 48 KB/s of pcm (a player at real time) to the end of its stream."""

    def read() -> None:
        taken, started = 0, time.monotonic()
        try:
            with httpx.stream("POST", url + SPEECH, json=body, timeout=120) as response:
                outcome["status"] = response.status_code
                for chunk in response.iter_raw(4800):
                    taken += len(chunk)
                    time.sleep(max(0.0, started + taken / 48_000 - time.monotonic()))
            outcome["result"] = "complete"
        except httpx.HTTPError as exc:
            outcome["result"] = type(exc).__name__
        outcome["seconds"], outcome["bytes"] = time.monotonic() - started, taken

    return read


def test_slow_readers_give_their_places_back_within_the_read_window_and_real_time_is_never_cut(
    emulated_limits_server: ServerProcess,
) -> None:
    server = emulated_limits_server
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 30, "an idle server")
    cancelled = metrics(server.url)["tts_requests_cancelled_total"]
    long = {"input": STORY[:3000], "response_format": "pcm"}  # minutes of audio each
    steady: dict[str, object] = {}
    player = threading.Thread(
        target=real_time_reader(server.url, {**long, "input": STORY[:220]}, steady)  # ~15 s of audio
    )
    player.start()
    readers = SlowReaders(server.url, long, SLOW_READERS - 1, rate=1024)
    try:
        wait_for(lambda: metrics(server.url)[BOARD] == SLOW_READERS, 30, "every place taken")
        refused = httpx.post(server.url + SPEECH, json={"input": "Me too.", "response_format": "pcm"})
        assert refused.status_code == 503  # the slow readers hold every place
        # Each is cut, its synthesis cancelled and its place given back (the bytes already in its sockets
        # still trickle in); the idle timeout is far off, so only the read-rate floor can do it.
        wait_for(
            lambda: metrics(server.url)["tts_requests_cancelled_total"] - cancelled >= SLOW_READERS - 1,
            4 * READ_WINDOW_S + 10,
            "every slow reader cut",
        )
        served = httpx.post(server.url + SPEECH, json={"input": "Me too.", "response_format": "pcm"})
        assert served.status_code == 200 and served.content
    finally:
        readers.close()
        player.join(120)
    assert steady["status"] == 200 and steady["result"] == "complete", steady
    assert float(steady["seconds"]) > 2 * READ_WINDOW_S  # it read at real time for longer than a window
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 30, "every place given back")


def _last_forked_child(server: ServerProcess) -> psutil.Process:
    """The HTTP server: main's children forked from it (same command line) are the shared state's manager,
    LitServe's manager, then the HTTP servers, after the workers are up."""
    main = psutil.Process(server.process.pid)
    forked = [p for p in main.children() if p.cmdline() == main.cmdline()]
    return max(forked, key=lambda p: (p.create_time(), p.pid))


def test_a_dead_http_server_process_stops_the_server_with_a_failure_exit_code(
    bounded_server: ServerProcess,
) -> None:
    """Killed for memory, say: LitServe neither notices nor starts another, and main would wait forever
    while the port answers nobody. Last in this file: it ends the module's server."""
    server = bounded_server
    processes = server.tree()
    http = _last_forked_child(server)
    assert any(c.status == psutil.CONN_LISTEN for c in http.net_connections("tcp"))
    http.kill()
    assert server.process.wait(timeout=60) == 1, server.log()[-3000:]
    assert wait_gone(processes, timeout=10) == []
    errors = [line for line in server.log().splitlines() if " ERROR " in line and str(http.pid) in line]
    assert errors and "HTTP server" in errors[0], server.log()[-3000:]
