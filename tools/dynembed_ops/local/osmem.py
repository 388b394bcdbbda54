"""Start and stop osmem-server (the in-memory OpenSearch-compatible server shipped on PyPI) for
tests, benchmarks and the local runtime, with a clear error when the port is taken."""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from dynembed.core.errors import ConfigError, DynembedError

DEFAULT_HOST = "127.0.0.1"


def port_in_use(port: int, host: str = DEFAULT_HOST) -> bool:
    """True if something already listens on host:port (SO_REUSEADDR ignores TIME_WAIT leftovers)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class RunningOsmem:
    """A started osmem-server process. It also exits on its own when this process dies."""

    url: str
    host: str
    port: int
    server: Any
    """The ``osmem_server.OsmemServer`` handle."""

    def stop(self) -> None:
        self.server.close()

    def __enter__(self) -> RunningOsmem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_osmem(
    port: int | None = None,
    *,
    host: str = DEFAULT_HOST,
    startup_timeout_s: float = 30.0,
    japanese: bool = False,
) -> RunningOsmem:
    """Start osmem-server on ``port`` (None: a free port the server picks) and return once it
    answers HTTP. Japanese analysis is off by default: dynembed never needs kuromoji.

    Raises ConfigError if the port is already in use, DynembedError if the server fails to start.
    """
    from osmem_server import OsmemError, OsmemServer

    if port is not None and port_in_use(port, host):
        raise ConfigError(
            f"port {port} on {host} is already in use (another osmem-server or OpenSearch?); "
            "stop it or choose another port"
        )
    addr = f"{host}:{port or 0}"
    try:
        server = OsmemServer.start(addr=addr, japanese=japanese, startup_timeout=startup_timeout_s)
    except OsmemError as exc:
        if port is not None and port_in_use(port, host):
            raise ConfigError(f"port {port} on {host} was taken while osmem-server started: {exc}") from exc
        raise DynembedError(f"osmem-server did not start on {addr}: {exc}") from exc
    url = server.url.rstrip("/")
    try:
        _wait_until_ready(url, startup_timeout_s)
    except DynembedError:
        server.close()
        raise
    actual_port = int(url.rsplit(":", 1)[1])
    return RunningOsmem(url=url, host=host, port=actual_port, server=server)


def _wait_until_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = exc
        time.sleep(0.02)
    raise DynembedError(f"osmem-server at {url} did not answer within {timeout_s} s: {last_error}")
