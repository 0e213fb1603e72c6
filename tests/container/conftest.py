"""The image's tests: its build starts in the background once the tests are collected; they run last.

Fixtures: `image` (the built tts-api, its size and build time), `cuda_variant` (the CUDA variant's build),
`podman` (podman with this machine's flags). A missing podman skips them, with the reason, only where
`make test` could not have installed it (tests/system.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests import system
from tests.container.background import BackgroundBuild
from tests.container.build import BUILD_TIMEOUT_S, BuildResult
from tests.container.engine import Podman
from tts_api.processes import START_TIMEOUT_S

BUILD = pytest.StashKey[BackgroundBuild]()
IMAGE_FIXTURES = ("image", "cuda_variant")
# The first test to use a fixture waits for it: the build, then a container's start.
WAIT_TIMEOUT_S = BUILD_TIMEOUT_S + START_TIMEOUT_S


def _needs(item: pytest.Item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after -k and -m deselected what they do: no build for deselected tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests that need the image to the end, and start building it now."""
    waiting = [item for item in items if any(_needs(item, f) for f in IMAGE_FIXTURES)]
    if not waiting:
        return
    # The CUDA variant is built second: its tests go after those of tts-api.
    waiting.sort(key=lambda item: _needs(item, "cuda_variant"))
    items[:] = [item for item in items if item not in waiting] + waiting
    for fixture in (*IMAGE_FIXTURES, "running"):
        first = next((item for item in waiting if _needs(item, fixture)), None)
        if first is not None:
            first.add_marker(pytest.mark.timeout(WAIT_TIMEOUT_S))
    if shutil.which("podman") is not None and not config.option.collectonly:
        config.stash[BUILD] = BackgroundBuild.start(
            cuda_variant=any(_needs(i, "cuda_variant") for i in waiting)
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    build = session.config.stash.get(BUILD, None)
    if build is not None:
        build.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The image's size and build time, in every run that built it."""
    build = config.stash.get(BUILD, None)
    if build is None:
        return
    terminalreporter.section("container image")
    for name in ("tts-api", "cuda-variant"):
        result = build.done(name)
        if result is not None:
            terminalreporter.line(_describe(result))
    terminalreporter.line(f"build log: {build.log}")


def _describe(result: BuildResult) -> str:
    outcome = (
        result.error
        or f"{result.size_bytes / 1e9:.2f} GB ({result.size_bytes} bytes), id {result.image_id[:12]}"
    )
    what = f"{result.tag} {result.build_args or ''}".strip()
    if result.name == "cuda-variant" and "+cpu" in result.build_args.get("TORCH_SPEC", ""):
        what += " (a CPU torch standing in for the CUDA wheel, which cannot be fetched here)"
    return f"{what}: {outcome}; built in {result.seconds:.0f} s"


def _build(config: pytest.Config) -> BackgroundBuild:
    system.require_program(shutil.which("podman"), "podman (the container engine)", "podman")
    build = config.stash.get(BUILD, None)
    if build is None:  # podman appeared after collection
        build = config.stash[BUILD] = BackgroundBuild.start(cuda_variant=True)
    return build


def _wait(config: pytest.Config, name: str) -> BuildResult:
    build = _build(config)
    result = build.wait(name, BUILD_TIMEOUT_S)
    if result.error is not None:
        pytest.fail(
            f"building {result.tag} failed ({result.error}); {build.log}:\n{build.tail()}", pytrace=False
        )
    return result


@pytest.fixture(scope="session")
def image(request: pytest.FixtureRequest) -> BuildResult:
    """The tts-api image, built (in the background) and left in the local store."""
    return _wait(request.config, "tts-api")


@pytest.fixture(scope="session")
def podman(image: BuildResult) -> Podman:
    return Podman().adapted_to(image.tag)


@pytest.fixture(scope="session")
def cuda_variant(request: pytest.FixtureRequest, image: BuildResult, podman: Podman) -> Iterator[BuildResult]:
    """The CUDA variant (TORCH_SPEC=cuda_torch_spec()), built after tts-api; removed from the store after
    the session (the build cache keeps its layers)."""
    result = _wait(request.config, "cuda-variant")
    yield result
    podman.run("rmi", "--force", result.tag, check=False)
