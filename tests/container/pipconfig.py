"""This machine's pip configuration, handed to `podman build` so that pip inside resolves as pip outside.

pip outside may find packages in places the image cannot see: local wheel folders (`find-links`, where a
CPU torch may lie beside an index that serves the CUDA one), file:// indexes, a constraints file, a CA
bundle for a proxy. Every key of `pip config list` (files and PIP_* variables, the variables winning) goes
into one pip.conf mounted at the image's /etc/pip.conf, and every local path it names is mounted read-only
at the same place. No host name is written anywhere: the configuration is read, not known.
"""

from __future__ import annotations

import ast
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["BuildMounts", "host_pip_settings", "mounts_for"]

IMAGE_PIP_CONF = "/etc/pip.conf"  # read by every pip in the image (pip's site-wide configuration)
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's bundle, which npm and apt read too
INDEX_KEYS = frozenset({"index-url", "extra-index-url"})


@dataclass(frozen=True)
class BuildMounts:
    """A pip.conf's text and the `-v` arguments that make it and what it names visible in a build."""

    pip_conf: str
    volumes: tuple[str, ...]  # each "HOST:IMAGE:ro"


def host_pip_settings(python: str = sys.executable) -> dict[tuple[str, str], str]:
    """`pip config list` of `python`'s pip: {(section, key): value}, PIP_* variables over the files."""
    listed = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    from_files: dict[tuple[str, str], str] = {}
    from_env: dict[tuple[str, str], str] = {}
    for line in listed.splitlines():
        name, sep, quoted = line.partition("=")
        if not sep:
            continue
        scope, _, key = name.rpartition(".")
        value = ast.literal_eval(quoted)  # pip prints repr()s: 'a b'
        if scope == ":env:":
            from_env["global", key] = value
        else:
            from_files[scope, key] = value
    return {**from_files, **from_env}


def _local_paths(key: str, value: str) -> list[Path]:
    """The existing local paths a setting names (file:// URLs included)."""
    paths: list[Path] = []
    for token in value.split():
        if token.startswith("file://"):
            path = Path(unquote(urlparse(token).path))
            # A PEP 503 index's pages link to files beside it (../../files): mount the folder above.
            paths.append(path.parent if key in INDEX_KEYS else path)
        elif token.startswith("/"):
            paths.append(Path(token))
    return [p for p in paths if p.exists()]


def _ca_bundle() -> Path | None:
    """This machine's CA bundle (SSL_CERT_FILE, else OpenSSL's default), resolved."""
    found = ssl.get_default_verify_paths().cafile
    return Path(found).resolve() if found and Path(found).is_file() else None


def mounts_for(settings: dict[tuple[str, str], str], pip_conf_path: Path) -> BuildMounts:
    """The mounts that give a build `settings`; writes the pip.conf to `pip_conf_path`."""
    sections: dict[str, list[str]] = {}
    for (section, key), value in sorted(settings.items()):
        sections.setdefault(section, []).append(f"{key} = {value}")
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items())
    pip_conf_path.write_text(text)
    targets = {IMAGE_PIP_CONF: pip_conf_path.resolve()}  # where in the image -> what on this machine
    for (_, key), value in settings.items():
        targets.update((str(p), p) for p in _local_paths(key, value))
    ca = _ca_bundle()
    if ca is not None:
        # This machine's trust store over the image's: a proxy's CA reaches pip, npm and apt alike.
        targets.setdefault(IMAGE_CA_BUNDLE, ca)
    return BuildMounts(text, tuple(f"{source}:{target}:ro" for target, source in sorted(targets.items())))
