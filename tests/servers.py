"""Test servers by configuration, each started one ahead of the tests that use it.

A server's start is ~15 s of imports, model loading and calibration in one process, while the tests before
it mostly keep one core busy: so when a test takes a server, the next configuration the session will ask
for (in the order of the collected tests) starts loading. A module declares its server with
`shared_server`, which also makes the fixture; every configuration is known once the tests are collected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tts_api.model.layout import ModelDir
from tts_api.processes import ServerProcess
from tts_api.settings import Settings

__all__ = ["ServerPool", "shared_server"]


@dataclass(frozen=True)
class Spec:
    flags: tuple[str, ...]
    env: Mapping[str, str] | None
    real: bool  # the real weights (`make model`), not the tiny model


SPECS: dict[str, Spec] = {}


def shared_server(
    name: str,
    *flags: str,
    scope: str = "module",
    env: Mapping[str, str] | None = None,
    real: bool = False,
) -> Callable[..., Iterator[ServerProcess]]:
    """The fixture `name`: a ready server on the tiny model (or the real one) with `flags`, stopped when
    `scope` ends. Assign it to a module attribute of the same name."""
    SPECS[name] = Spec(flags, env, real)
    model_fixture = "real_model_dir" if real else "tiny_model_dir"

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def fixture(request: pytest.FixtureRequest, server_pool: ServerPool) -> Iterator[ServerProcess]:
        request.getfixturevalue(model_fixture)  # fails clearly if the model is not there
        server = server_pool.take(name)
        try:
            yield server.wait_ready()
        finally:
            server.stop()

    return fixture


class ServerPool:
    """Starts the configurations in `order` one ahead (the first at once); stops, at the end, those no
    test took."""

    def __init__(self, order: list[str], tiny_model_dir: Path | None, logs: Path) -> None:
        self._order, self._tiny, self._logs = order, tiny_model_dir, logs
        self._ahead: dict[str, ServerProcess] = {}
        self._taken: set[str] = set()
        if order:
            self._start_ahead(order[0])

    @staticmethod
    def order_of(items: list[pytest.Item]) -> list[str]:
        """The configurations the tests use, in the order they first use them (a fixture parametrized
        with fixture names, like `any_server`, counts for each)."""
        order: dict[str, None] = {}
        for item in items:
            params = getattr(item, "callspec", None)
            values = [v for v in params.params.values() if isinstance(v, str)] if params else []
            order.update((name, None) for name in [*item.fixturenames, *values] if name in SPECS)  # type: ignore[attr-defined]
        return list(order)

    def take(self, name: str) -> ServerProcess:
        """The server `name` (started, perhaps not ready yet); the next configuration starts loading."""
        server = self._ahead.pop(name, None) or self._start(name)
        self._taken.add(name)
        after = self._order[self._order.index(name) + 1 :] if name in self._order else []
        later = [n for n in after if n not in self._taken]
        if later and not self._ahead:
            self._start_ahead(later[0])
        return server

    def close(self) -> None:
        for server in self._ahead.values():
            server.stop()
        self._ahead.clear()

    def _start_ahead(self, name: str) -> None:
        spec = SPECS[name]
        if spec.real and ModelDir(Settings().model_dir).missing():
            return  # its fixture fails with the reason when a test asks for it
        self._ahead[name] = self._start(name)

    def _start(self, name: str) -> ServerProcess:
        spec = SPECS[name]
        model_dir = Settings().model_dir if spec.real else self._tiny
        assert model_dir is not None, "no test was collected that needs a server"
        return ServerProcess.tts_api(model_dir, self._logs / f"{name}.log", *spec.flags, env=spec.env)
