"""Which podman flags an error asks for: only the ones it names, each once."""

from __future__ import annotations

import pytest

from tests.container.engine import CGROUP_FLAGS, ULIMIT_FLAGS, Podman


@pytest.mark.parametrize(
    ("error", "global_flags", "ulimit_flags"),
    [
        ("Error: OCI runtime error: crun: cgroups in hybrid mode not supported", CGROUP_FLAGS, ()),
        (
            "error setting rlimits for ready process: error setting rlimit type 7: operation not permitted",
            (),
            ULIMIT_FLAGS,
        ),
        ("Error: setrlimit `RLIMIT_NPROC`: Operation not permitted", (), ULIMIT_FLAGS),
        ("Error: short-name resolution enforced", (), ()),
    ],
)
def test_an_error_adds_the_flags_that_answer_it(
    error: str, global_flags: tuple[str, ...], ulimit_flags: tuple[str, ...]
) -> None:
    adapted = Podman()._adapt(error)
    assert (adapted.global_flags, adapted.ulimit_flags) == (global_flags, ulimit_flags)


def test_an_adapted_podman_does_not_adapt_twice() -> None:
    podman = Podman(global_flags=CGROUP_FLAGS, ulimit_flags=ULIMIT_FLAGS)
    assert podman._adapt("cgroups in hybrid mode; rlimit") == podman


def test_global_flags_come_before_the_verb_and_limits_only_where_a_container_is_made() -> None:
    podman = Podman(global_flags=CGROUP_FLAGS, ulimit_flags=ULIMIT_FLAGS)
    assert podman.command("run", "img") == ["podman", *CGROUP_FLAGS, "run", *ULIMIT_FLAGS, "img"]
    assert podman.command("build", ".") == ["podman", *CGROUP_FLAGS, "build", *ULIMIT_FLAGS, "."]
    assert podman.command("healthcheck", "run", "c") == ["podman", *CGROUP_FLAGS, "healthcheck", "run", "c"]
