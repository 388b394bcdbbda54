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


@pytest.mark.parametrize(
    ("flags", "messages"),
    [
        (["--lexical-weight", "0.5"], ["retrieval: lexical_weight: only with mode 'hybrid'"]),
        (
            ["--retrieval", "hybrid", "--fusion", "sum", "--precision", "int4"],
            ["retrieval.fusion: Input should be 'linear' or 'rrf'", "vectors.precision: Input should be"],
        ),
        (["--on-disk"], ["vectors: on_disk: needs a compressed precision"]),
        (
            ["--precision", "binary", "--oversample", "0.5"],
            ["vectors.oversample: Input should be greater than"],
        ),
    ],
)
def test_rebuild_retrieval_and_precision_flags_are_checked_before_anything_starts(
    runner: CliRunner, flags: list[str], messages: list[str]
) -> None:
    result = runner.invoke(app, ["rebuild", "--model", "hash-256", *flags])
    assert result.exit_code == 1 and "Traceback" not in result.output
    flat = " ".join(result.output.split())
    for message in messages:
        assert message in flat


def test_valid_retrieval_and_precision_flags_get_as_far_as_the_stack(runner: CliRunner) -> None:
    flags = ["--retrieval", "hybrid", "--fusion", "rrf", "--lexical-weight", "0.5"]
    flags += ["--precision", "binary", "--on-disk", "--oversample", "3"]
    result = runner.invoke(app, ["rebuild", "--model", "hash-256", *flags])
    assert result.exit_code == 1 and "dynembed up" in result.output


def test_the_demo_candidate_settings_are_checked_before_the_stack_starts(runner: CliRunner) -> None:
    import dynembed_ops.cli.local  # noqa: F401  (registers demo)

    result = runner.invoke(app, ["demo", "--candidate-precision", "int4", "--candidate-retrieval", "hybrid"])
    assert result.exit_code == 1
    assert "demo candidate: precision: Input should be" in " ".join(result.output.split())
