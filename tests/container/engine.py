"""The podman command, with the flags this machine needs found by trying them.

Some VMs refuse podman's defaults: with cgroup v1 in hybrid mode crun will not start a container ("cgroups in
hybrid mode not supported": use cgroupfs and runc), and podman's default rlimits cannot be set ("setrlimit
... operation not permitted": ask for lower ones). Each flag is added only after plain podman failed with
its error, so a machine that needs none gets plain podman, and the README's commands stay plain.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Podman", "PodmanError"]

# Global flags (before the verb): they reach every command, `healthcheck run` and `exec` included.
CGROUP_FLAGS = ("--cgroup-manager", "cgroupfs", "--runtime", "runc")
# Per verb: only the commands that create a container set rlimits.
ULIMIT_FLAGS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
CREATING_VERBS = frozenset({"run", "create", "build"})
PROBE_TIMEOUT_S = 120.0


class PodmanError(RuntimeError):
    """Raised when a podman command fails; carries the command's output."""


@dataclass(frozen=True)
class Podman:
    """`podman` plus the global flags and the rlimit flags this machine needs."""

    program: str = "podman"
    global_flags: tuple[str, ...] = ()
    ulimit_flags: tuple[str, ...] = ()

    def command(self, verb: str, *args: str) -> list[str]:
        """The full command line for `podman VERB ARGS`."""
        limits = self.ulimit_flags if verb in CREATING_VERBS else ()
        return [self.program, *self.global_flags, verb, *limits, *args]

    def run(
        self, verb: str, *args: str, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `podman VERB ARGS` to the end; raise PodmanError on failure when `check`."""
        command = self.command(verb, *args)
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise PodmanError(f"`{' '.join(command)}` exited with {done.returncode}:\n{done.stderr[-4000:]}")
        return done

    def adapted_to(self, image: str) -> Podman:
        """This podman with whatever flags starting a container from `image` turns out to need."""
        podman = self
        errors: list[str] = []
        for _ in range(3):
            probe = podman.run("run", "--rm", image, "true", timeout=PROBE_TIMEOUT_S, check=False)
            if probe.returncode == 0:
                return podman
            errors.append(probe.stderr.strip())
            adapted = podman._adapt(probe.stderr)
            if adapted == podman:
                break
            podman = adapted
        raise PodmanError(f"podman cannot start a container from {image} here:\n" + "\n".join(errors))

    def _adapt(self, error: str) -> Podman:
        """This podman with the flags that answer `error`, or itself when none does."""
        text = error.lower()
        if "hybrid mode" in text and not self.global_flags:
            return Podman(self.program, CGROUP_FLAGS, self.ulimit_flags)
        if "rlimit" in text and not self.ulimit_flags:
            return Podman(self.program, self.global_flags, ULIMIT_FLAGS)
        return self

    def flags(self) -> Sequence[str]:
        """What this podman adds to plain podman, for a log line."""
        return [*self.global_flags, *self.ulimit_flags]
