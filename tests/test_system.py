"""A missing Debian program skips a test only where `make test` could not have installed it."""

from __future__ import annotations

import pytest

from tests import system


def test_a_found_program_is_returned() -> None:
    assert system.require_program("/usr/bin/thing", "thing", "thing") == "/usr/bin/thing"


def test_missing_where_it_could_be_installed_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "why_setup_cannot_install", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="sets it up"):
        system.require_program(None, "thing", "thing")


def test_missing_where_it_cannot_be_installed_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "why_setup_cannot_install", lambda: "not root (uid 1000)")
    monkeypatch.delenv(system.REQUIRED_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"cannot install it here: not root \(uid 1000\)"):
        system.require_program(None, "thing", "thing")


def test_missing_on_ci_fails_even_where_it_cannot_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "why_setup_cannot_install", lambda: "not root (uid 1000)")
    monkeypatch.setenv(system.REQUIRED_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="requires it"):
        system.require_program(None, "thing", "thing")


def test_a_capability_missing_where_make_test_sets_machines_up_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "why_setup_cannot_install", lambda: None)
    monkeypatch.delenv(system.REQUIRED_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="root, apt-get"):
        system.unavailable("no network namespaces")


def test_the_reason_setup_cannot_install_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    assert system.why_setup_cannot_install() == "not root (uid 1000)"
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    assert system.why_setup_cannot_install() == "no apt-get on PATH"
    monkeypatch.setattr(system.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert system.why_setup_cannot_install() is None
