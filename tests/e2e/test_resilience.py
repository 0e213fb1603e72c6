"""Crashes, shutdowns, slow and silent clients, against real server processes.

- a worker killed mid-stream: its client sees a failure within seconds, a replacement starts, /health
  says so meanwhile, the next request succeeds, nothing is left on the board;
- every request gives its place on the board back, however it ends: its worker dies after the client
  left, or while the client reads nothing; the manager answers its admission too late;
- a stop (SIGTERM to the main process, SIGTERM or Ctrl-C's SIGINT to the whole process group): new
  requests are refused, the stream in flight finishes, every process ends by itself, exit code 0; with a
  short grace period the stream in flight is cut visibly instead;
- the shared-state manager dies: the server stops every process and exits non-zero, without a crash loop;
- a client that stops reading: synthesis stays a bounded amount ahead of it, then it is cut;
- a whole file longer than the lead limit completes (its client takes nothing before the end).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import threading
import time
import wave
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.audio_check import decode
from tests.rawclient import RawRequest, metrics, wait_for
from tests.servers import shared_server
from tts_api.processes import ServerProcess, free_port, wait_gone

pytestmark = pytest.mark.server
SPEECH = "/v1/audio/speech"
PCM_BYTES_PER_S = 48_000
LONG_TEXT = " ".join(f"Sentence {i} keeps this stream going for quite a while longer." for i in range(60))
# 400 s of audio made at once: pauses cost no synthesis, so a client that reads nothing fills its socket
# buffers in a moment, and only the lead limit holds the worker back (silence goes out 1 s a step).
PAUSED_TEXT = " ".join(f"Word {i}. [pause:10s]" for i in range(40))
PAUSED_S = 400.0
MAX_LEAD_S = 4.0
IDLE_TIMEOUT_S = 6.0  # long enough to kill a worker while its client is stalled, before the cut
BOARD = "tts_cancel_board_entries"
# A whole file's decoded length: its MP3 has a LAME header, its AAC (ADTS) cannot say the priming.
PRIMING = {"aac": 1024}
FRAME = {"mp3": 576, "aac": 1024, "opus": 480, "flac": 0, "wav": 0, "pcm": 0}
CHUNKS = "tts_chunks_synthesized_total"


def workers(server: ServerProcess) -> list[psutil.Process]:
    """The live worker processes (a killed one may linger as a zombie until LitServe reaps it)."""
    found = []
    for process in server.tree():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(process.cmdline()):
                found.append(process)
    return found


def shared_state_manager(server: ServerProcess) -> psutil.Process:
    """Main's first forked child: the shared state's manager (LitServe's and the HTTP servers come later)."""
    main = psutil.Process(server.process.pid)
    forked = [p for p in main.children() if p.cmdline() == main.cmdline()]
    return min(forked, key=lambda p: (p.create_time(), p.pid))


def idle(server: ServerProcess) -> None:
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 30, "an idle server")


def replaced(server: ServerProcess, victim: psutil.Process) -> None:
    """Wait until a new worker serves in place of `victim` (LitServe notices a death within seconds)."""
    wait_for(
        lambda: (
            [w for w in workers(server) if w.pid != victim.pid]
            and httpx.get(server.url + "/health", timeout=5).status_code == 200
        ),
        240,
        "a replacement",
    )


def steady(read: Callable[[], float], quiet_s: float, timeout: float, what: str) -> float:
    """Poll `read` until its value has not changed for `quiet_s`; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


resilient_server = shared_server(
    "resilient_server",
    "--max-lead",
    str(MAX_LEAD_S),
    "--idle-timeout",
    str(IDLE_TIMEOUT_S),
    "--max-pause",
    str(PAUSED_S),
)


def test_a_killed_worker_fails_its_stream_visibly_and_is_replaced(resilient_server: ServerProcess) -> None:
    server = resilient_server
    outcome: dict[str, object] = {}

    def listener() -> None:
        try:
            with httpx.stream(
                "POST", server.url + SPEECH, json={"input": LONG_TEXT, "response_format": "pcm"}, timeout=60
            ) as response:
                for _ in response.iter_raw():
                    outcome.setdefault("first", time.monotonic())
            outcome["result"] = "clean end"
        except httpx.HTTPError as exc:
            outcome["result"] = type(exc).__name__
        outcome["end"] = time.monotonic()

    thread = threading.Thread(target=listener)
    thread.start()
    wait_for(lambda: "first" in outcome, 60, "the stream's first audio")
    (victim,) = workers(server)
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    thread.join(30)
    assert outcome["result"] != "clean end", "a cut stream must not look complete"
    assert float(outcome["end"]) - killed_at < 5  # type: ignore[arg-type]

    health = wait_for(
        lambda: (r := httpx.get(server.url + "/health", timeout=5)).status_code == 503 and r,
        10,
        "a 503 health",
    )
    assert health.json()["not_ready"] == ["0"]
    wait_for(lambda: httpx.get(server.url + "/health", timeout=5).status_code == 200, 240, "a replacement")
    assert victim.pid not in [w.pid for w in workers(server)]
    response = httpx.post(
        server.url + SPEECH, json={"input": "Back again.", "response_format": "pcm"}, timeout=120
    )
    assert response.status_code == 200 and len(response.content) > 0
    assert wait_for(lambda: metrics(server.url)["tts_cancel_board_entries"] == 0, 10, "an empty board")


def test_a_worker_that_dies_after_its_client_left_gives_the_place_back(
    resilient_server: ServerProcess,
) -> None:
    server = resilient_server
    idle(server)
    (victim,) = workers(server)
    client = RawRequest(server.url + SPEECH, {"input": LONG_TEXT, "response_format": "pcm"})
    client.read_until_body()
    victim.suspend()  # it can no longer read the board: it will never see that its client left
    try:
        client.close()
        time.sleep(2)  # the front hears the disconnect, marks the entry cancelled and stops watching
    finally:
        victim.kill()
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 15, "the dead worker's place to be given back")
    replaced(server, victim)


def test_a_stalled_event_stream_whose_worker_dies_gives_the_place_back(
    resilient_server: ServerProcess,
) -> None:
    """The worker-lost error cannot reach a client that reads nothing; its place goes back regardless."""
    server = resilient_server
    idle(server)
    (victim,) = workers(server)
    body = json.dumps({"input": PAUSED_TEXT, "response_format": "pcm", "stream_format": "sse"}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up soon
    sock.settimeout(60)
    sock.connect(("127.0.0.1", server.port))
    try:
        head = f"POST {SPEECH} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert sock.recv(1024)  # the stream started; from now on the client takes nothing
        # The sockets fill, the relay blocks, the lead limit holds the worker: no more chunks.
        steady(lambda: metrics(server.url)[CHUNKS], 1.5, 120, "the worker to be held by the stalled client")
        victim.kill()
        wait_for(lambda: metrics(server.url)[BOARD] == 0, 15, "the dead worker's place to be given back")
    finally:
        sock.close()
    replaced(server, victim)


def test_an_admission_the_manager_answers_too_late_gives_the_place_back(
    resilient_server: ServerProcess,
) -> None:
    server = resilient_server
    idle(server)
    manager = shared_state_manager(server)
    manager.suspend()  # slow: busy, swapping, or stopped for a moment
    try:
        refused = httpx.post(
            server.url + SPEECH, json={"input": "Too slow.", "response_format": "pcm"}, timeout=30
        )
    finally:
        manager.resume()  # and now it answers "admitted", to nobody
    assert refused.status_code == 503 and refused.headers["retry-after"]
    wait_for(lambda: metrics(server.url)[BOARD] == 0, 15, "the late admission's place to be given back")


# One per way a worker makes a whole file: its encoder keeps the bytes to the end (MP3, and alike FLAC,
# Opus, AAC), it streams a WAV whose header the front completes, or it streams (pcm).
@pytest.mark.parametrize("fmt", ["mp3", "wav", "pcm"])
def test_a_whole_file_longer_than_the_lead_limit_completes(
    resilient_server: ServerProcess, tiny_expected: Callable[..., int], fmt: str
) -> None:
    """Its client takes nothing before the end: the lead limit must not hold its synthesis back."""
    text = "\n".join(f"Line {i} of a file that is longer than the lead limit." for i in range(6))
    assert tiny_expected(text) > 2 * MAX_LEAD_S * 24_000
    body = {"input": text, "response_format": fmt, "stream": False, "seed": 1}
    response = httpx.post(resilient_server.url + SPEECH, json=body, timeout=60)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    samples, rate = decode(response.content, fmt)
    assert abs(len(samples) * 24_000 // rate - tiny_expected(text) - PRIMING.get(fmt, 0)) <= FRAME[fmt]
    if fmt == "wav":
        with wave.open(io.BytesIO(response.content)) as audio:  # trusts the header's sizes
            assert audio.getnframes() == tiny_expected(text)


def test_a_client_that_stops_reading_is_held_to_a_bounded_lead_then_cut(
    resilient_server: ServerProcess,
) -> None:
    server = resilient_server
    before = metrics(server.url)
    body = json.dumps({"input": PAUSED_TEXT, "response_format": "pcm"}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # what the kernel holds for it: little
    sock.settimeout(120)
    sock.connect(("127.0.0.1", server.port))
    head = f"POST {SPEECH} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert sock.recv(1024)  # the stream started; from now on the client takes nothing
    cancelled = 'tts_requests_cancelled_total{stage="streaming"}'
    wait_for(lambda: metrics(server.url)[cancelled] > before[cancelled], 120, "the stalled client to be cut")
    after = metrics(server.url)
    received = 1024
    sock.settimeout(10)
    while chunk := sock.recv(1 << 16):  # what the socket buffers held, then the server's close
        received += len(chunk)
    sock.close()
    synthesized_s = after["tts_audio_seconds_total"] - before["tts_audio_seconds_total"]
    total_s = PAUSED_S  # far more than the lead, and all of it could be made at once
    assert synthesized_s <= received / PCM_BYTES_PER_S + MAX_LEAD_S + 15, (synthesized_s, received)
    assert synthesized_s < total_s / 2
    assert wait_for(lambda: metrics(server.url)["tts_cancel_board_entries"] == 0, 10, "an empty board")


def _start_stream(server: ServerProcess, text: str, outcome: dict[str, object]) -> threading.Thread:
    def listener() -> None:
        events: list[dict[str, object]] = []
        try:
            with httpx.stream(
                "POST",
                server.url + SPEECH,
                json={"input": text, "response_format": "pcm", "stream_format": "sse"},
                timeout=120,
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        outcome.setdefault("first", time.monotonic())
        except httpx.HTTPError as exc:
            outcome["transport_error"] = type(exc).__name__
        outcome["events"], outcome["ended"] = events, time.monotonic()

    thread = threading.Thread(target=listener)
    thread.start()
    wait_for(lambda: "first" in outcome, 120, "the stream's first audio")
    return thread


# Several chunks after the first: still being spoken when the drain begins, at any machine speed.
MEDIUM_TEXT = " ".join(
    f"Part {i} of a story that is still being told when the server is asked to stop." for i in range(3)
)


# How a server is stopped in the wild. Each stop drains and then ends every process, exit code 0, nothing
# left for anyone to kill, whichever processes the signal reached.
STOP_WYOMING_PORT = free_port()
STOPS = {
    # `docker stop`, `kill PID`: SIGTERM to the main process only; two workers and two HTTP servers.
    "docker-stop": (signal.SIGTERM, False, "120", ("--workers-per-device", "2", "--api-servers", "2")),
    # systemd's default KillMode=control-group, `kill -- -PGID`: SIGTERM to every process, the Wyoming
    # child included; a stream in flight finishes all the same.
    "systemd-stop": (signal.SIGTERM, True, "120", ("--wyoming-port", str(STOP_WYOMING_PORT))),
    # Ctrl-C in a terminal: SIGINT to every process; a short grace cuts the stream in flight, visibly.
    "ctrl-c": (signal.SIGINT, True, "0.5", ()),
}
# A server for each (tests/servers.py starts it ahead): fixtures named like `ctrl_c_server`.
STOP_SERVERS = {how: how.replace("-", "_") + "_server" for how in STOPS}
for _how, (_, _, _grace, _extra) in STOPS.items():
    globals()[STOP_SERVERS[_how]] = shared_server(
        STOP_SERVERS[_how], "--drain-grace", _grace, *_extra, scope="function"
    )


@pytest.mark.parametrize(("how", "server_name"), list(STOP_SERVERS.items()), ids=list(STOPS))
def test_a_stop_drains_then_ends_every_process(
    request: pytest.FixtureRequest, how: str, server_name: str
) -> None:
    sig, whole_group, grace, extra = STOPS[how]
    wyoming = STOP_WYOMING_PORT if "--wyoming-port" in extra else None
    server: ServerProcess = request.getfixturevalue(server_name)
    if wyoming:
        wait_for(lambda: listening(wyoming), 30, "the Wyoming service")
    processes = server.tree()
    if wyoming:
        assert [p for p in processes if "tts_api.wyoming" in p.cmdline()]
    if how == "docker-stop":
        # main, two managers (ours, LitServe's), the resource tracker, 2 workers, 2 HTTP servers
        assert len(processes) >= 8, [p.cmdline() for p in processes]
    outcome: dict[str, object] = {}
    text = LONG_TEXT if grace == "0.5" else MEDIUM_TEXT
    thread = _start_stream(server, text, outcome)
    if whole_group:
        os.killpg(server.process.pid, sig)
    else:
        os.kill(server.process.pid, sig)
    refused = wait_for(
        lambda: (
            (r := httpx.post(server.url + SPEECH, json={"input": "Too late."}, timeout=10)).status_code == 503
            and r
        ),
        10,
        "new requests to be refused",
    )
    refused_at = time.monotonic()
    assert refused.headers["retry-after"]
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "draining"
    if wyoming:
        assert listening(wyoming), "the Wyoming service stopped before the drain ended"
    thread.join(120)
    events = outcome["events"]
    assert isinstance(events, list)
    if grace == "120":
        assert events[-1]["type"] == "speech.audio.done", "the request in flight should have finished"
        ended = outcome["ended"]
        assert isinstance(ended, float) and refused_at < ended, "the stream ended before the drain began"
    else:
        assert events[-1]["type"] == "error" and "shutting down" in str(events[-1]), events[-1]
    assert server.process.wait(timeout=120) == 0, server.log()[-3000:]
    alive = wait_gone(processes, timeout=10)
    assert alive == [], f"left behind: {alive}"  # each ended by itself: nothing needs killing
    assert server.stop() == []
    if wyoming:
        assert not listening(wyoming)
    assert "Traceback" not in server.log()


def test_a_dead_manager_stops_the_server_with_a_failure_exit_code(resilient_server: ServerProcess) -> None:
    """The shared state is gone: no crash loop of workers reloading the model, no limping on. Every process
    stops, and the exit code tells the supervisor to start the server afresh.

    Last in this file: it ends the module's server."""
    server = resilient_server
    idle(server)
    processes = server.tree()
    manager = shared_state_manager(server)
    manager.kill()
    with contextlib.suppress(httpx.TransportError):  # it may already have stopped listening
        health = httpx.get(server.url + "/health", timeout=10)
        assert (health.status_code, health.json()["status"]) == (503, "unavailable")
    assert server.process.wait(timeout=60) == 1, server.log()[-3000:]  # as docs/reliability.md says
    alive = wait_gone(processes, timeout=10)
    assert alive == [], f"left behind: {alive}"
    errors = [line for line in server.log().splitlines() if " ERROR " in line and str(manager.pid) in line]
    assert errors, "no error line names the process that died"


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
