"""`dynembed rebuild --no-wait` says "started" only once the workflow has accepted the input: a
rebuild without a golden set (none given, no DYNEMBED_EVAL_DIR) used to print "rebuild
started" and exit 0 while the execution failed in Validate and no generation was ever
registered, so nothing anywhere said it had not happened."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dynembed.core.errors import DynembedError
from dynembed_ops.cli.generations import _accepted, _read_input

pytestmark = pytest.mark.unit


@dataclass
class FakeSfn:
    """describe_execution / get_execution_history as Step Functions answers them, step by step."""

    statuses: list[dict[str, Any]]
    states: list[list[str]] = field(default_factory=list)
    calls: int = 0

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        answer = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return answer

    def get_execution_history(self, executionArn: str, **_: Any) -> dict[str, Any]:
        entered = self.states[min(self.calls - 1, len(self.states) - 1)] if self.states else []
        return {
            "events": [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": n}} for n in entered]
        }


def test_an_input_the_workflow_refuses_is_an_error_naming_the_reason() -> None:
    cause = json.dumps(
        {"errorType": "ConfigError", "errorMessage": "invalid rebuild input: eval: a golden set is required"}
    )
    sfn = FakeSfn(
        [{"status": "RUNNING"}, {"status": "FAILED", "error": "ConfigError", "cause": cause}], [["Validate"]]
    )
    with pytest.raises(DynembedError, match="golden set is required"):
        _accepted(sfn, "arn:x", timeout_s=5, poll_s=0)


def test_a_rebuild_past_validation_is_accepted() -> None:
    sfn = FakeSfn([{"status": "RUNNING"}], [["Validate"], ["Validate", "Register"]])
    assert _accepted(sfn, "arn:x", timeout_s=5, poll_s=0) is True


def test_a_rebuild_still_validating_at_the_deadline_is_not_claimed_either_way() -> None:
    sfn = FakeSfn([{"status": "RUNNING"}], [["Validate"]])
    assert _accepted(sfn, "arn:x", timeout_s=0, poll_s=0) is False


def test_an_input_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "input.json"
    bad.write_text('{"model": 3')
    with pytest.raises(ValueError, match=r"input.json is not valid JSON"):
        _read_input(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    with pytest.raises(ValueError, match="must hold an object"):
        _read_input(listed)
