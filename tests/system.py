"""Real programs the tests drive, from Debian's packages (tools/system-packages.txt).

`make test` installs them when it can (root with apt-get). Only where it cannot is a missing program (or
a missing capability, such as network namespaces) a skip, with the reason printed; where it could, the
test fails. CI (`.ci/run` sets TTS_TESTS_REQUIRE_SYSTEM=1) never skips: there it always fails.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["REQUIRED_ENV", "require_program", "unavailable", "why_setup_cannot_install"]

REQUIRED_ENV = "TTS_TESTS_REQUIRE_SYSTEM"  # set by .ci/run: no program may be skipped there


def why_setup_cannot_install() -> str | None:
    """Why `make test`'s tools/system-packages cannot install Debian packages here; None where it can."""
    if os.geteuid() != 0:
        return f"not root (uid {os.geteuid()})"
    if shutil.which("apt-get") is None:
        return "no apt-get on PATH"
    return None


def require_program(found: str | None, what: str, package: str) -> str:
    """`found` (a path), or skip where it cannot be installed here, or fail where it should have been."""
    if found is not None:
        return found
    unavailable(
        f"{what} is missing (Debian package {package}, installed by `make test` via tools/system-packages)"
    )


def unavailable(reason: str) -> NoReturn:
    """What this machine cannot do: a skip only where `make test` cannot set machines up (not root, or no
    apt-get: the project's rule), and never on CI (REQUIRED_ENV); a failure everywhere else."""
    cannot = why_setup_cannot_install()
    if cannot is None:
        pytest.fail(f"{reason}, on a machine where `make test` sets it up (root, apt-get)", pytrace=False)
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRED_ENV}=1 (CI) requires it", pytrace=False)
    # Off CI only (CI failed above): the project's rule for a machine `make test` cannot set up.
    pytest.skip(f"{reason}; `make test` cannot install it here: {cannot} (under CI this fails)")
