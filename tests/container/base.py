"""The image to build FROM: the Dockerfile's default, else one made from Debian's packages.

Where no image registry answers, `debootstrap` makes a Debian bookworm with the same Python (3.11) from the
Debian mirror, and `podman import` stores it; it is kept under LOCAL_BASE for the next build.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.container.engine import Podman, PodmanError
from tts_api.processes import ROOT

__all__ = ["LOCAL_BASE", "default_base", "ensure_base"]

LOCAL_BASE = "localhost/tts-api-base:bookworm"
# python:3.11-slim-bookworm's part that the Dockerfile uses: python, venv, CA certificates (apt comes with
# the minimal variant; useradd with its required packages).
DEBIAN_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
PULL_TIMEOUT_S = 300.0
DEBOOTSTRAP_TIMEOUT_S = 900.0


def default_base(dockerfile: Path = ROOT / "Dockerfile") -> str:
    """The Dockerfile's default PYTHON_IMAGE."""
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile.read_text(), re.MULTILINE)
    if found is None:
        raise ValueError(f"{dockerfile} has no `ARG PYTHON_IMAGE=` default")
    return found.group(1)


def ensure_base(podman: Podman, say: Callable[[str], None]) -> str:
    """An image that is in the local store to build FROM: the default if here or pulled, else LOCAL_BASE."""
    default = default_base()
    if podman.run("image", "exists", default, check=False).returncode == 0:
        return default
    pulled = podman.run("pull", "--quiet", default, timeout=PULL_TIMEOUT_S, check=False)
    if pulled.returncode == 0:
        return default
    say(f"cannot pull {default} ({pulled.stderr.strip().splitlines()[-1:]}); using {LOCAL_BASE}")
    if podman.run("image", "exists", LOCAL_BASE, check=False).returncode != 0:
        _make_debian_base(podman, say)
    return LOCAL_BASE


def _make_debian_base(podman: Podman, say: Callable[[str], None]) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise PodmanError("debootstrap is missing (Debian package debootstrap, installed by `make test`)")
    with tempfile.TemporaryDirectory(prefix="tts-api-base-") as work:
        root = Path(work) / "root"
        say(f"making {LOCAL_BASE} with debootstrap ({DEBIAN_PACKAGES})")
        made = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={DEBIAN_PACKAGES}", "bookworm", str(root)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=DEBOOTSTRAP_TIMEOUT_S,
        )
        if made.returncode != 0:
            raise PodmanError(
                f"debootstrap exited with {made.returncode}:\n{(made.stdout + made.stderr)[-3000:]}"
            )
        # The downloaded packages and the package lists: the Dockerfile's apt-get update fetches fresh ones.
        for leftover in [*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/cache/apt/*.bin")]:
            leftover.unlink()
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                podman.command("import", "--change", "ENV LANG=C.UTF-8", "-", LOCAL_BASE),
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise PodmanError(f"podman import of the debootstrap base failed:\n{imported.stderr[-2000:]}")
