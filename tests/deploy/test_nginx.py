"""The generated nginx config: complete, accepted by nginx itself, and set up for streaming."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from deploy.nginx import find_nginx, render_config
from tests.system import require_program

UPSTREAMS = ["127.0.0.1:18001", "127.0.0.1:18002"]


def directives(config: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in config.splitlines())
    return [line for line in lines if line]


def test_every_placeholder_is_filled(tmp_path: Path) -> None:
    config = render_config(tmp_path, "127.0.0.1:18000", UPSTREAMS)
    assert re.findall(r"@[A-Z]+@", config) == []
    for address in UPSTREAMS:
        assert f"server {address} max_fails=1 fail_timeout=5s;" in directives(config)


def test_the_config_streams_and_balances_by_open_connections(tmp_path: Path) -> None:
    found = set(directives(render_config(tmp_path, "127.0.0.1:18000", UPSTREAMS)))
    for directive in (
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "least_conn;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_ignore_client_abort off;",
        "proxy_read_timeout 1h;",
        "daemon off;",
    ):
        assert directive in found


def test_nginx_accepts_the_config_without_root_paths(tmp_path: Path) -> None:
    nginx = require_program(find_nginx(), "nginx", "nginx")
    for directory in ("logs", "temp"):
        (tmp_path / directory).mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(render_config(tmp_path, "127.0.0.1:18000", UPSTREAMS))
    error_log = tmp_path / "logs" / "error.log"
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(config), "-e", str(error_log)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
