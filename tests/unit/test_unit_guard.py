"""The unit marker's promise (no network, no moto) is enforced by tests/plugins/unit_guard.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.plugins.unit_guard import NetworkInUnitTestError, _blocked

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_tcp_connection_is_refused_and_recorded() -> None:
    # GIVEN the guard  WHEN code connects to a TCP port
    attempts: list[str] = []
    with _blocked(attempts), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # THEN it raises (not an OSError, so a caller's "connection failed" handler cannot hide it)
        with pytest.raises(NetworkInUnitTestError):
            sock.connect(("127.0.0.1", 9))
        assert not issubclass(NetworkInUnitTestError, OSError)
    assert attempts == ["socket connect to ('127.0.0.1', 9)"]


def test_unix_sockets_stay_allowed() -> None:
    # socketpair-style local IPC is not the network.
    attempts: list[str] = []
    with _blocked(attempts):
        a, b = socket.socketpair()
        a.sendall(b"x")
        assert b.recv(1) == b"x"
        a.close()
        b.close()
    assert attempts == []


def test_the_guard_is_undone_after_use() -> None:
    before = socket.socket.connect
    with _blocked([]):
        assert socket.socket.connect is not before
    assert socket.socket.connect is before


def test_a_unit_test_that_swallows_the_refusal_still_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN unit tests that reach for the network or moto, one hiding the error (the subprocess
    # imports the guard from this checkout, whatever PYTHONPATH the run was started with)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest('pytest_plugins = ["tests.plugins.unit_guard"]')
    pytester.makepyfile(
        """
        import socket, pytest
        pytestmark = pytest.mark.unit

        def test_swallowed():
            try:
                socket.create_connection(("127.0.0.1", 9), timeout=0.1)
            except Exception:
                pass

        def test_moto():
            from moto import mock_aws
            with mock_aws():
                pass

        def test_pure():
            assert 1 + 1 == 2
        """
    )
    pytester.makepyfile(
        test_other="""
        import socket

        def test_unmarked_may_connect():
            try:
                socket.create_connection(("127.0.0.1", 9), timeout=0.1)
            except OSError:
                pass
        """
    )
    pytester.makeini("[pytest]\nmarkers =\n    unit: u\n    integration: i\n")
    # WHEN they run  THEN both fail; the pure one and the unmarked one pass
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_swallowed _*",
            "unit test touched the outside world: socket connect*",
            "*_ test_moto _*",
            "*a unit test may not use moto*",
        ]
    )
