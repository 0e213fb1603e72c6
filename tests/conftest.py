"""Shared fixtures: the tiny and the real model directories, and real server processes."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.background import Background
from tests.servers import ServerPool, shared_server
from tests.tiny_model import build_tiny_model_dir, tiny_samples
from tts_api.model.layout import ModelDir
from tts_api.processes import ServerProcess, free_port
from tts_api.settings import Settings

if TYPE_CHECKING:
    from tts_api.synth.engine import KokoroEngine

os.environ["HF_HUB_OFFLINE"] = "1"
# Test servers run beside the test process (and, in CI, other servers) on 2 cores: one torch thread each
# avoids OpenMP threads spinning against each other. Speed is measured by `make bench`, not here.
os.environ.setdefault("TTS_TORCH_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_onnx_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its decoder exported to ONNX and verified, as `make model` does."""
    from tts_api.model.export import export_decoder

    model_dir = tmp_path_factory.mktemp("tiny-onnx") / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    export_decoder(ModelDir(model_dir), lambda message: None, listen=False)
    return model_dir


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    model_dir = Settings().model_dir
    missing = ModelDir(model_dir).missing()
    if missing:
        pytest.fail(f"the real model is not built at {model_dir} (missing {missing}); run `make model`")
    return model_dir


@pytest.fixture(scope="session")
def real_engines(real_model_dir: Path) -> Callable[[bool], KokoroEngine]:
    """The real weights on ONNX Runtime (the export `make model` verifies), loaded once per session:
    `real_engines(trim_silence)`. Not `auto`: where the CPU has bfloat16 kernels, auto races bf16 against it
    at load (synth/race.py), and these tests' audio would depend on which won."""
    from tts_api.synth.engine import KokoroEngine

    return functools.cache(lambda trim: KokoroEngine(real_model_dir, "cpu", engine="onnx", trim_silence=trim))


BENCH_TESTS = "tests/test_bench.py"


def _is_bench(item: pytest.Item) -> bool:
    return item.nodeid.startswith(BENCH_TESTS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The quick benchmark runs beside the session from its start (`quick_bench`): its tests go last."""
    items[:] = [i for i in items if not _is_bench(i)] + [i for i in items if _is_bench(i)]


@pytest.fixture(scope="session", autouse=True)
def quick_bench(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background | None]:
    """`make bench QUICK=1` on the tiny model, started with the session when its tests were collected."""
    if not any(_is_bench(item) for item in request.session.items):
        yield None
        return
    model_dir: Path = request.getfixturevalue("tiny_model_dir")
    out = tmp_path_factory.mktemp("bench-results")
    command = [sys.executable, "-m", "bench.run", "--quick", "--model-dir", str(model_dir)]
    run = Background([*command, "--out", str(out)], out, env={"HF_HUB_OFFLINE": "1"})
    yield run
    run.stop()


# Where tiny_server serves the Wyoming protocol.
TINY_WYOMING_PORT = free_port()


@pytest.fixture(scope="session")
def tiny_wyoming_port() -> int:
    return TINY_WYOMING_PORT


@pytest.fixture(scope="session", autouse=True)
def server_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerPool]:
    """Every test server of the session, each started while the tests before it run (tests/servers.py);
    the first from the session's first test on."""
    order = ServerPool.order_of(request.session.items)
    tiny_model_dir: Path | None = request.getfixturevalue("tiny_model_dir") if order else None
    pool = ServerPool(order, tiny_model_dir, tmp_path_factory.mktemp("logs"))
    yield pool
    pool.close()


# One server on the tiny model, shared by the tests that need no special configuration; it serves Wyoming
# too (tests/wyoming/), which changes nothing for the others.
tiny_server = shared_server("tiny_server", "--wyoming-port", str(TINY_WYOMING_PORT), scope="session")
# Two workers and two HTTP server processes: requests cross process boundaries.
tiny_server_multi = shared_server(
    "tiny_server_multi", "--workers-per-device", "2", "--api-servers", "2", scope="session"
)


# The real weights, shared by every test that needs them (tests/e2e/test_real_weights.py, test_agents.py).
real_server = shared_server("real_server", real=True, scope="session")


@pytest.fixture(params=["tiny_server", "tiny_server_multi"], ids=["1-worker", "2-workers-2-api-servers"])
def any_server(request: pytest.FixtureRequest) -> ServerProcess:
    """Each server configuration in turn."""
    server: ServerProcess = request.getfixturevalue(request.param)
    return server


@pytest.fixture(scope="session")
def tiny_expected() -> Callable[..., int]:
    """Exact audio samples the tiny model gives for a text: `tiny_expected(text, speed=1.0)`."""
    from kokoro import KPipeline

    from tts_api.model.g2p import offline_spacy
    from tts_api.model.kmodel import REPO_ID

    with offline_spacy():
        quiet = KPipeline(lang_code="a", repo_id=REPO_ID, model=False)
    return lambda text, speed=1.0, normalize=True: tiny_samples(quiet, text, speed=speed, normalize=normalize)
