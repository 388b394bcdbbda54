"""DynamoDB and DynamoDB Streams served by a moto server in a process of its own.

Most of the local pipeline's requests are DynamoDB's (per doc: the source read, the ledger's
read, begin and commit, the embedding cache), and moto answers them in Python: in the stack's
process they share one interpreter lock with the handlers that make them, so the second core
sits idle. In a child process they run beside the handlers (docs/benchmarks.md, "the local
stack's speed").

Nothing changes for a client: the stack's own processes are pointed at the child with
``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``, and a DynamoDB request
that reaches the stack's main endpoint (the AWS CLI as the source application, with
``--endpoint-url``) is forwarded to the child as it came, so one endpoint still serves every
service. The child exits when its stdin closes, so it never outlives the stack.

    python -m dynembed_ops.local.dynamodb_process --port N
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import select
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from typing import IO, Any

from dynembed.core.errors import DynembedError

DYNAMODB_TARGET_PREFIXES = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")
"""The ``X-Amz-Target`` of every DynamoDB and DynamoDB Streams operation (JSON protocol)."""
READY = b"dynembed-dynamodb ready"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"})


class DynamoDbProcess:
    """The child moto server: ``start`` returns once it answers, ``stop`` ends it."""

    def __init__(self, port: int, start_timeout_s: float = 60.0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None

    def start(self) -> DynamoDbProcess:
        self.spawn()
        return self.wait_ready()

    def spawn(self) -> None:
        """Start the child; ``wait_ready`` waits for it (a caller can start other things between)."""
        # A file, not a pipe: a pipe nobody reads would stall the child once its buffer filled.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop, after the child)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "dynembed_ops.local.dynamodb_process", "--port", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
        )

    def wait_ready(self) -> DynamoDbProcess:
        """Until the child says it is serving (it writes one line once bound, so a port taken
        by another server in the meantime is an error, not a stranger's tables)."""
        assert self._process is not None and self._process.stdout is not None, "spawn() first"
        ready = select.select([self._process.stdout], [], [], self.start_timeout_s)[0]
        line = self._process.stdout.readline() if ready else b""
        if line.strip() == READY:
            return self
        if self._process.poll() is None and not ready:
            self.stop()
            raise DynembedError(
                f"the DynamoDB server (moto, port {self.port}) did not start in {self.start_timeout_s:.0f} s"
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        tail = self._error_tail()
        self.stop()
        raise DynembedError(f"the DynamoDB server (moto, port {self.port}) exited at start: {tail}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # Its tables live in its memory, as the main server's do: nothing to flush, so end it.
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if self._errors is not None:
            self._errors.close()
            self._errors = None

    def _error_tail(self) -> str:
        if self._errors is None:
            return ""
        self._errors.seek(0)
        return self._errors.read().decode(errors="replace")[-2000:]

    def forwarding(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """A WSGI app that sends DynamoDB requests to the child and the rest to ``app``."""
        port = self.port

        def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIXES):
                return app(environ, start_response)  # type: ignore[no-any-return]
            return _forward(port, environ, start_response)

        return dispatch


def _forward(port: int, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {
        key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    path = environ.get("PATH_INFO") or "/"
    if environ.get("QUERY_STRING"):
        path += "?" + environ["QUERY_STRING"]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
    finally:
        connection.close()
    start_response(f"{response.status} {response.reason}", [*kept, ("Content-Length", str(len(payload)))])
    return [payload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto's DynamoDB for a local dynembed stack")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import logging
    import os
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from dynembed_ops.local import moto_patches

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_patches.apply()
    # Bound here, in the main thread: a port in use fails the process (moto's ThreadedMotoServer
    # would wait forever for a server thread that died).
    server = make_server(
        "127.0.0.1",
        args.port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )

    def exit_with_the_stack() -> None:
        sys.stdin.buffer.read()  # until the stack closes the pipe, or dies
        os._exit(0)

    threading.Thread(target=exit_with_the_stack, daemon=True).start()
    sys.stdout.buffer.write(READY + b"\n")
    sys.stdout.buffer.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
