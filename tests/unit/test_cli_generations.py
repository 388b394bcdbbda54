"""Generation commands meet people's mistakes with one clear line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import dynembed_ops.cli.generations  # noqa: F401  (registers the commands on the app)
from dynembed_ops.cli.main import app

pytestmark = pytest.mark.unit


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DYNEMBED_STATE_DIR", str(tmp_path))  # no stack.json here: no stack is running
    return CliRunner()


def test_generation_commands_are_registered(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    for command in ("rebuild", "approve", "rollback", "generations", "retire", "backfill"):
        assert command in result.output


def test_rebuild_with_an_unknown_model_fails_before_contacting_anything(runner: CliRunner) -> None:
    # GIVEN no stack at all; WHEN the input is wrong
    result = runner.invoke(app, ["rebuild", "--model", "no-such-model", "--chunker-target-chars", "0"])
    # THEN the input error is what the person reads, naming both fields
    assert result.exit_code == 1
    assert "model: unknown embedding model 'no-such-model'" in result.output
    assert "chunker.target_chars" in result.output
    assert "Traceback" not in result.output


def test_rebuild_needs_queries_and_qrels_together(runner: CliRunner) -> None:
    result = runner.invoke(app, ["rebuild", "--model", "hash-256", "--queries", "q.jsonl"])
    assert result.exit_code == 1
    assert "--queries and --qrels go together" in result.output


@pytest.mark.parametrize(
    "command", [["rollback"], ["generations"], ["retire", "g1"], ["backfill", "--tenant", "t"]]
)
def test_commands_that_need_a_stack_say_how_to_start_one(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 1
    assert "dynembed up" in result.output
    assert "Traceback" not in result.output
