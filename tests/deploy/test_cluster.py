"""The local cluster against real processes: tiny-model replicas behind a real nginx on loopback.

- requests spread over the replicas;
- first audio through the proxy is as early as direct (a correctness check that nothing buffers);
- a client leaving at the proxy stops synthesis on the replica behind it (shown by its counters);
- a full replica's 503 + Retry-After reaches the client unchanged;
- a killed replica fails its own streams visibly, and new requests go to the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from deploy.cluster import Cluster, start_cluster
from deploy.nginx import find_nginx
from tests.rawclient import RawRequest, metrics, wait_for, worker_logged
from tests.system import require_program
from tts_api.processes import ROOT, ServerProcess, free_port, wait_gone

pytestmark = pytest.mark.server


@pytest.fixture(scope="module", autouse=True)
def _nginx() -> None:
    require_program(find_nginx(), "nginx", "nginx")


SPEECH = "/v1/audio/speech"
STREAMING = 'tts_requests_cancelled_total{stage="streaming"}'
STARTED = "tts_requests_started_total"
CHUNKS = "tts_chunks_synthesized_total"
BOARD = "tts_cancel_board_entries"
SETTLE_S = 60.0  # a cancelled job ends after the chunk in progress: seconds on a busy 2-core box
LONG_TEXT = "\n".join(
    f"This is line number {i} of a long text that keeps the worker busy." for i in range(40)
)
# A leading pause is sent without calling the model, so the first audio measures the HTTP path alone,
# not the synthesis time that other work on the machine makes noisy.
PAUSE_FIRST = {"input": "[pause:1s] Hello there.", "response_format": "pcm"}
PROXY_OVERHEAD_BOUND_S = 0.05


def server_args(model_dir: Path, *extra: str) -> list[str]:
    return ["--model-dir", str(model_dir), "--workers-per-device", "1", *extra]


@pytest.fixture(scope="module")
def cluster(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two replicas that each take one request at a time (`--max-pending 1`), so one stream fills one."""
    workdir = tmp_path_factory.mktemp("cluster")
    with start_cluster(2, workdir, server_args(tiny_model_dir, "--max-pending", "1")) as running:
        yield running


def settled(cluster: Cluster) -> list[dict[str, float]]:
    """Every replica's metrics once nothing is in flight anywhere."""

    def idle() -> list[dict[str, float]] | None:
        snapshot = [metrics(r.url) for r in cluster.replicas]
        return snapshot if all(m[BOARD] == 0 for m in snapshot) else None

    return wait_for(idle, SETTLE_S, "idle replicas")


def first_audio_s(url: str) -> float:
    """Seconds from sending a request to its first body bytes; the client then leaves."""
    start = time.monotonic()
    client = RawRequest(url + SPEECH, PAUSE_FIRST)
    try:
        head = client.read_until_body(min_body_bytes=1)
        elapsed = time.monotonic() - start
    finally:
        client.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    return elapsed


def busy_replica(cluster: Cluster) -> ServerProcess:
    """The one replica that holds a request (after its first audio, so it has been admitted)."""
    (replica,) = [r for r in cluster.replicas if metrics(r.url)[BOARD] == 1]
    return replica


def test_requests_spread_over_the_replicas(cluster: Cluster) -> None:
    before = settled(cluster)
    for i in range(4):
        response = httpx.post(
            cluster.url + SPEECH,
            json={"input": f"Hello number {i}.", "response_format": "wav", "stream": False},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert response.content[:4] == b"RIFF" and int(response.headers["content-length"]) > 44
        settled(cluster)
    after = settled(cluster)
    served = [a[STARTED] - b[STARTED] for a, b in zip(after, before, strict=True)]
    assert sum(served) == 4
    assert all(n >= 1 for n in served), f"requests per replica: {served}"


def test_first_audio_through_the_proxy_is_as_early_as_direct(cluster: Cluster) -> None:
    direct, proxied = [], []
    for i in range(6):  # interleaved, so a busy moment on the machine hits both alike
        settled(cluster)
        direct.append(first_audio_s(cluster.replicas[i % 2].url))
        settled(cluster)
        proxied.append(first_audio_s(cluster.url))
    settled(cluster)
    overhead = statistics.median(proxied) - statistics.median(direct)
    assert overhead <= PROXY_OVERHEAD_BOUND_S, f"direct {direct}, through nginx {proxied}"


def test_a_client_leaving_at_the_proxy_stops_synthesis_on_its_replica(cluster: Cluster) -> None:
    before = settled(cluster)
    client = RawRequest(
        cluster.url + SPEECH,
        {"input": LONG_TEXT, "response_format": "pcm"},
        headers={"X-Request-Id": "leaves-at-proxy"},
    )
    client.read_until_body(min_body_bytes=1)
    replica = busy_replica(cluster)
    index = cluster.replicas.index(replica)
    at_disconnect = metrics(replica.url)
    client.close()
    after = wait_for(
        lambda: (m := metrics(replica.url))[STREAMING] > before[index][STREAMING] and m,
        SETTLE_S,
        "the replica to cancel the stream",
    )
    settled(cluster)
    assert metrics(replica.url)[CHUNKS] - at_disconnect[CHUNKS] <= 1, "synthesis went on after the cancel"
    assert after[CHUNKS] - before[index][CHUNKS] < 40, "the whole text was synthesized"
    assert worker_logged(replica.log(), "leaves-at-proxy"), "the cancel does not name its request"


def test_a_full_replicas_503_passes_through_unchanged(cluster: Cluster) -> None:
    settled(cluster)
    streams = []
    try:
        for _ in range(2):  # least_conn puts one on each replica, which fills it
            stream = RawRequest(cluster.url + SPEECH, {"input": LONG_TEXT, "response_format": "pcm"})
            streams.append(stream)
            assert stream.read_until_body().startswith(b"HTTP/1.1 200")
        assert [metrics(r.url)[BOARD] for r in cluster.replicas] == [1, 1]
        body = {"input": "One more, please.", "response_format": "pcm"}
        direct = httpx.post(cluster.replicas[0].url + SPEECH, json=body, timeout=30)
        proxied = httpx.post(cluster.url + SPEECH, json=body, timeout=30)
    finally:
        for stream in streams:
            stream.close()
    assert direct.status_code == proxied.status_code == 503
    assert proxied.headers["retry-after"] == direct.headers["retry-after"]
    assert proxied.headers["content-type"] == direct.headers["content-type"] == "application/json"
    assert proxied.json() == direct.json()
    assert proxied.json()["error"]["type"] == "server_error"
    settled(cluster)


def test_one_command_runs_the_cluster_and_stops_all_of_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The command's own work: its processes, nginx in front, the stop. Its replica runs the load-testing
    engine, which starts in seconds: the replicas above show the model's speech through the proxy, and a
    second model load beside them cost this test minutes on a busy 2-core machine."""
    port = free_port()
    output = tmp_path / "cluster.out"
    command = [sys.executable, "-m", "deploy.cluster", "--replicas", "1", "--port", str(port)]
    replica = server_args(tiny_model_dir, "--engine", "emulated:100:0")
    command += ["--workdir", str(tmp_path / "cluster"), "--", *replica]
    with output.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    seen: dict[int, psutil.Process] = {}
    try:
        wait_for(lambda: process.poll() is not None or "serving on" in output.read_text(), 300, "the cluster")
        assert process.poll() is None, output.read_text()
        seen.update((p.pid, p) for p in psutil.Process(process.pid).children(recursive=True))
        assert any("nginx" in p.name() for p in seen.values())
        response = httpx.post(
            f"http://127.0.0.1:{port}{SPEECH}",
            json={"input": "Hello.", "response_format": "pcm"},
            timeout=120,
        )
        assert response.status_code == 200 and len(response.content) > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, output.read_text()
        alive = wait_gone(list(seen.values()), timeout=10)
        assert alive == [], f"left behind: {alive}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        for leftover in seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()


def kill_tree(replica: ServerProcess) -> None:
    """What a crashed machine or an OOM-killed container looks like: every process gone at once."""
    for process in replica.tree():
        process.send_signal(signal.SIGKILL)
    os.killpg(replica.process.pid, signal.SIGKILL)
    replica.process.wait(timeout=10)


def test_a_killed_replica_fails_its_streams_and_the_others_take_new_requests(cluster: Cluster) -> None:
    """Last in this file: it kills the module's replicas (one at a time, so one request fills one)."""
    settled(cluster)
    outcome = "clean end"
    with httpx.stream(
        "POST",
        cluster.url + SPEECH,
        json={"input": LONG_TEXT, "response_format": "pcm"},
        timeout=60,
    ) as response:
        chunks = response.iter_raw()
        next(chunks)
        victim = busy_replica(cluster)
        killed_at = time.monotonic()
        kill_tree(victim)
        try:
            for _ in chunks:
                pass
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
    assert outcome in ("RemoteProtocolError", "ReadError"), f"the cut stream ended with {outcome}"
    assert time.monotonic() - killed_at < 10

    (survivor,) = [r for r in cluster.replicas if r is not victim]
    before = metrics(survivor.url)[STARTED]
    for i in range(4):
        response = httpx.post(
            cluster.url + SPEECH, json={"input": f"Still here {i}.", "response_format": "pcm"}, timeout=120
        )
        assert response.status_code == 200 and len(response.content) > 0, response.text
    assert metrics(survivor.url)[STARTED] - before == 4

    kill_tree(survivor)
    response = httpx.post(cluster.url + SPEECH, json={"input": "Anyone?"}, timeout=30)
    assert response.status_code == 502
    assert response.headers["retry-after"] == "1"
    assert json.loads(response.text)["error"]["code"] == "no_replica"
