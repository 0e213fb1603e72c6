"""The offline bundle's test: the bundle is built and installed in the background once the tests are
collected (a minute or two of pip each, niced, beside the other tests); the test that uses it runs last."""

from __future__ import annotations

import pytest

from tests.bundle.background import TIMEOUT_S, Bundle

BUNDLE = pytest.StashKey[Bundle]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests that need the bundle to the end, and start building it now."""
    waiting = [item for item in items if "bundle" in getattr(item, "fixturenames", ())]
    if not waiting or config.option.collectonly:
        return
    items[:] = [item for item in items if item not in waiting] + waiting
    waiting[0].add_marker(pytest.mark.timeout(TIMEOUT_S + 300))
    config.stash[BUNDLE] = Bundle()


def pytest_sessionfinish(session: pytest.Session) -> None:
    bundle = session.config.stash.get(BUNDLE, None)
    if bundle is not None:
        bundle.stop()


@pytest.fixture(scope="session")
def bundle(request: pytest.FixtureRequest) -> Bundle:
    """The bundle, built and installed (in the background); the test fails with pip's words if it was not."""
    built = request.config.stash[BUNDLE]  # started when the tests were collected
    finished = built.run.wait(TIMEOUT_S)
    if finished.returncode != 0:
        pytest.fail(
            f"make bundle, then its install.sh, failed ({finished.returncode}):\n"
            f"{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}",
            pytrace=False,
        )
    return built
