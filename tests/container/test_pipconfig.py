"""This machine's pip configuration becomes one pip.conf and read-only mounts of the local paths it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.container.pipconfig import IMAGE_PIP_CONF, host_pip_settings, mounts_for


def test_every_setting_goes_into_the_pip_conf_and_every_local_path_is_mounted(tmp_path: Path) -> None:
    wheels, index, constraints = tmp_path / "wheels", tmp_path / "mirror" / "simple", tmp_path / "c.txt"
    wheels.mkdir()
    index.mkdir(parents=True)
    constraints.write_text("torch<=3\n")
    settings = {
        ("global", "find-links"): str(wheels),
        ("global", "extra-index-url"): f"file://{index} https://example.invalid/simple",
        ("global", "constraint"): str(constraints),
        ("install", "timeout"): "180",
        ("global", "cert"): str(tmp_path / "absent.pem"),  # named but not here: nothing to mount
    }
    mounts = mounts_for(settings, tmp_path / "pip.conf")
    assert (tmp_path / "pip.conf").read_text() == mounts.pip_conf
    assert f"find-links = {wheels}" in mounts.pip_conf and "[install]\ntimeout = 180" in mounts.pip_conf
    volumes = set(mounts.volumes)
    assert f"{tmp_path / 'pip.conf'}:{IMAGE_PIP_CONF}:ro" in volumes
    # An index's pages link to files beside it: the folder above `simple` is mounted.
    assert {f"{p}:{p}:ro" for p in (wheels, index.parent, constraints)} <= volumes
    assert not [v for v in volumes if "absent.pem" in v or "example.invalid" in v]


def test_pips_own_settings_are_read_and_its_variables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "123")
    settings = host_pip_settings(sys.executable)
    assert settings["global", "default-timeout"] == "123"
