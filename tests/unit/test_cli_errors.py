"""Errors a person meets get one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dynembed.core.errors import ConfigError
from dynembed_ops.cli.main import app
from dynembed_ops.source_app import read_jsonl

pytestmark = pytest.mark.unit


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DYNEMBED_STATE_DIR", str(tmp_path))  # no stack.json here: no stack is running
    return CliRunner()


def _one_line_error(result: object, contains: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    assert contains in output


@pytest.mark.parametrize(
    "args",
    [["search", "hello", "--as", "reader"], ["status"], ["audit"], ["dlq"], ["generations"], ["rollback"]],
)
def test_commands_that_need_a_running_stack_say_so(runner: CliRunner, args: list[str]) -> None:
    _one_line_error(runner.invoke(app, args), "dynembed up")


def test_unknown_model_is_named_with_the_known_ones(runner: CliRunner) -> None:
    result = runner.invoke(app, ["demo", "--baseline-model", "gpt-9000"])
    _one_line_error(result, "gpt-9000")
    assert "hash-256" in result.output


def test_port_in_use_is_reported(runner: CliRunner) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line_error(runner.invoke(app, ["up", "--port", str(port)]), f"port {port}")


def test_malformed_corpus_line_is_named(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"doc_id": "a", "body": "x"}\n\n{"doc_id": "b", "body": \n')
    with pytest.raises(ConfigError, match=r"corpus.jsonl:3: not valid JSON"):
        list(read_jsonl(corpus))


@pytest.mark.parametrize(
    "option",
    [["--candidate-retrieval", "hybrid"], ["--candidate-precision", "binary"]],
    ids=["hybrid", "binary"],
)
def test_demo_candidate_settings_without_a_candidate_are_refused(
    runner: CliRunner, option: list[str]
) -> None:
    # `--candidate-model none` skips the rebuild: the candidate's settings were silently dropped
    # and the whole demo ran without the candidate asked for.
    result = runner.invoke(app, ["demo", "--candidate-model", "none", *option])
    _one_line_error(result, "--candidate-model none")
