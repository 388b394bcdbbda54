"""What the ``unit`` marker promises, enforced: no network and no moto.

During every phase (setup, call, teardown) of a test marked ``unit``, ``socket.connect`` and
``connect_ex`` raise for anything but a Unix socket, and starting moto's mock raises. An attempt
fails the test even when the code under test catches the error (it is recorded and checked
after the phase), so "it fell back quietly" cannot hide a network call.

A unit test also sees no ``DYNEMBED_*`` variable that an earlier test (a local stack applying its
environment, say) left behind: settings built in a unit test come from its own code, never from
the order the suite ran in.

Also switches coverage's dynamic context to ``unit`` or ``other`` per test, so one full run
yields the unit tier's own coverage (``coverage report --contexts='^(unit)?$'``; see the
Makefile). Start-up (the empty context) and collection count as unit: a ``pytest -m unit`` run
goes through them too.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class NetworkInUnitTestError(RuntimeError):
    """Not an OSError on purpose: code that handles connection failures must not swallow it."""


@contextmanager
def _blocked(attempts: list[str]) -> Iterator[None]:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(sock: socket.socket, address: Any) -> None:
        attempts.append(f"socket connect to {address!r}")
        raise NetworkInUnitTestError(
            f"a unit test may not open a connection (to {address!r}): mark it integration"
        )

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return real_connect(sock, address)
        refuse(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return real_connect_ex(sock, address)
        refuse(sock, address)
        return 1

    moto = _moto()
    real_start = moto.MockAWS.start if moto is not None else None

    def start(self: Any, *args: Any, **kwargs: Any) -> None:
        attempts.append("moto mock started")
        raise NetworkInUnitTestError("a unit test may not use moto: use the fakes, or mark it integration")

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    if moto is not None:
        moto.MockAWS.start = start
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]
        if moto is not None:
            moto.MockAWS.start = real_start


def _moto() -> Any:
    """moto's mock class, imported now if no test module has yet (so a test that imports moto
    itself is caught too); None where moto is not installed."""
    try:
        import moto.core.models
    except ImportError:
        return None
    return moto.core.models


def _guarded(item: pytest.Item) -> Generator[None, Any, Any]:
    if item.get_closest_marker("unit") is None:
        return (yield)
    moto = _moto()
    if moto is not None and moto.MockAWS._nested_count:
        pytest.fail("a moto mock is active during a unit test: use the fakes, or mark it integration")
    attempts: list[str] = []
    with _blocked(attempts):
        result = yield
    if attempts:
        pytest.fail("unit test touched the outside world: " + "; ".join(attempts[:3]), pytrace=False)
    return result


@pytest.fixture(autouse=True)
def _no_inherited_dynembed_environment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Autouse, so it runs before the test's own fixtures, which may set variables of their own."""
    if request.node.get_closest_marker("unit") is not None:
        for name in [name for name in os.environ if name.startswith("DYNEMBED_")]:
            monkeypatch.delenv(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    _coverage_context(item)
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


def pytest_sessionstart(session: pytest.Session) -> None:
    _switch_context("unit")


def _coverage_context(item: pytest.Item) -> None:
    _switch_context("unit" if item.get_closest_marker("unit") else "other")


def _switch_context(name: str) -> None:
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is not None:
        current.switch_context(name)
