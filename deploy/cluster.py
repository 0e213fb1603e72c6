"""A local cluster: N `server.py` replicas on loopback ports behind nginx, started and stopped as one.

`python -m deploy.cluster --replicas 2 [--port 8000] [--workdir DIR] [-- server.py flags]`, or
`make cluster N=2 ARGS="..."`. The replicas run exactly as `server.py` alone would; nginx
(deploy/nginx.conf.template) streams their audio through unbuffered and balances by open connections.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType

from tts_api.processes import START_TIMEOUT_S, ServerProcess, free_port, server_command

from .nginx import Nginx, NginxMissing, find_nginx

__all__ = ["Cluster", "main", "start_cluster"]

logger = logging.getLogger("deploy.cluster")


class Cluster:
    """The replicas and the balancer in front of them; `stop()` (or leaving a `with`) ends them all."""

    def __init__(self, replicas: Sequence[ServerProcess], balancer: Nginx) -> None:
        self.replicas = list(replicas)
        self.balancer = balancer
        self.url = balancer.url

    def stop(self) -> None:
        """Stop the balancer first (no new requests reach a stopping replica), then every replica tree."""
        self.balancer.stop()
        for replica in self.replicas:
            replica.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_cluster(
    replicas: int,
    workdir: Path,
    server_args: Sequence[str] = (),
    *,
    port: int | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Cluster:
    """Start `replicas` servers with `server_args`, wait until each is healthy, then nginx in front.

    Logs go to `workdir` (replica-<i>.log, nginx/logs/). Whatever was started is stopped on failure.
    """
    if find_nginx() is None:  # before spending a minute on the replicas
        raise NginxMissing("nginx is not installed; on Debian or Ubuntu: apt-get install nginx")
    if port is not None and not _port_free(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[ServerProcess] = []
    try:
        for i in range(replicas):
            replica_port = free_port()
            started.append(
                ServerProcess(
                    server_command(replica_port, *server_args),
                    replica_port,
                    workdir / f"replica-{i}.log",
                    name=f"replica-{i}",
                )
            )
        for replica in started:  # they load their models in parallel
            replica.wait_ready(timeout)
        upstreams = [f"127.0.0.1:{replica.port}" for replica in started]
        balancer = Nginx(workdir / "nginx", upstreams, port=port).wait_ready()
    except BaseException:
        for replica in started:
            replica.stop()
        raise
    return Cluster(started, balancer)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(cluster: Cluster) -> None:
    """Block until interrupted or nginx exits; report replicas that die (nginx routes around them)."""
    reported: set[str] = set()
    while cluster.balancer.process.poll() is None:
        for replica in cluster.replicas:
            if replica.process.poll() is not None and replica.name not in reported:
                reported.add(replica.name)
                logger.warning(
                    "%s (%s) exited with %s; see %s",
                    replica.name,
                    replica.url,
                    replica.process.returncode,
                    replica.log_path,
                )
        time.sleep(1.0)
    logger.error("nginx exited with %s:\n%s", cluster.balancer.process.returncode, cluster.balancer.log())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    server_args = args[args.index("--") + 1 :] if "--" in args else []
    own_args = args[: args.index("--")] if "--" in args else args
    parser = argparse.ArgumentParser(
        prog="python -m deploy.cluster",
        description="N tts-api replicas behind nginx on loopback. Flags after `--` go to every server.py"
        " (all but --host and --port, which the cluster sets).",
    )
    parser.add_argument("--replicas", type=int, default=2, help="server.py processes (default 2)")
    parser.add_argument("--port", type=int, default=8000, help="nginx's port on 127.0.0.1 (default 8000)")
    parser.add_argument(
        "--workdir", type=Path, help="logs and nginx's config (default: a new temporary directory)"
    )
    options = parser.parse_args(own_args)
    if options.replicas < 1:
        parser.error("--replicas must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every /health poll
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="tts-cluster-"))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops the cluster like Ctrl-C
    logger.info("starting %d replicas (logs in %s)", options.replicas, workdir)
    try:
        cluster = start_cluster(options.replicas, workdir, server_args, port=options.port)
    except KeyboardInterrupt:
        return 130
    except (NginxMissing, RuntimeError) as exc:
        logger.error("%s", exc)
        return 1
    with cluster:
        replicas = ", ".join(replica.url for replica in cluster.replicas)
        logger.info("serving on %s -> %s; Ctrl-C stops everything", cluster.url, replicas)
        try:
            _watch(cluster)
        except KeyboardInterrupt:
            logger.info("stopping the cluster")
            return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
