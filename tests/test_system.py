"""A missing Debian program skips a test only where `make test` could not have installed it."""

from __future__ import annotations

import pytest

from tests import system


def test_a_found_program_is_returned() -> None:
    assert system.require_program("/usr/bin/thing", "thing", "thing") == "/usr/bin/thing"


def test_missing_where_it_could_be_installed_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "can_install_packages", lambda: True)
    with pytest.raises(pytest.fail.Exception, match="sets it up"):
        system.require_program(None, "thing", "thing")


def test_missing_where_it_cannot_be_installed_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "can_install_packages", lambda: False)
    monkeypatch.delenv(system.REQUIRED_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not root or no apt-get"):
        system.require_program(None, "thing", "thing")


def test_missing_on_ci_fails_even_where_it_cannot_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "can_install_packages", lambda: False)
    monkeypatch.setenv(system.REQUIRED_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="requires it"):
        system.require_program(None, "thing", "thing")


def test_a_capability_missing_where_make_test_sets_machines_up_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "can_install_packages", lambda: True)
    monkeypatch.delenv(system.REQUIRED_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="root, apt-get"):
        system.unavailable("no network namespaces")
