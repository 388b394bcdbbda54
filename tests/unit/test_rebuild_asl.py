"""The rebuild state machine definition, read as a graph: retries on transient errors, every
failure path leaves the active generation alone, promotion only behind the gate, the backfill
Map over segments, the catch-up loop, the approval branch, and steps the Lambda knows."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from dynembed.rebuild.steps import STEP_NAMES
from dynembed_ops.local.stepfunctions import definition_for, definition_path, local_definition

pytestmark = pytest.mark.unit

TRANSIENT = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "TransientError"}
FAILURE_STATES = {"MarkFailed", "InvalidInput", "ApprovalTimedOut"}
APPROVAL_WAITS = {"WaitForApproval", "WaitForEstimateApproval"}
"""Where Catches may lead: states that never touch the active generation."""


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(definition_path().read_text(encoding="utf-8"))


def all_states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(name, state, enclosing Map or None) for every state, nested ones included."""
    for name, state in machine["States"].items():
        yield name, state, None
        if state["Type"] == "Map":
            for inner_name, inner in state["ItemProcessor"]["States"].items():
                yield inner_name, inner, state


def targets(state: dict[str, Any], *, catches: bool = True) -> set[str]:
    nexts = {state["Next"]} if "Next" in state else set()
    nexts |= {c["Next"] for c in state.get("Choices", [])}
    if "Default" in state:
        nexts.add(state["Default"])
    if catches:
        nexts |= {c["Next"] for c in state.get("Catch", [])}
    return nexts


def reachable(states: dict[str, Any], start: str, skip_edge: tuple[str, str] | None = None) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [t for t in targets(states[name]) if (name, t) != skip_edge]
    return seen


def test_definition_is_json_with_only_the_function_placeholder(asl: dict[str, Any]) -> None:
    # GIVEN the file CDK deploys and the local runtime runs
    text = definition_path().read_text(encoding="utf-8")
    # THEN it names no placeholder but the workflow function's ARN, which substitution removes
    assert set(re.findall(r"\$\{([^}]*)\}", text)) == {"WorkflowFunctionArn"}
    assert "${" not in definition_for("arn:aws:lambda:us-east-1:123456789012:function:dynembed-workflow")
    assert asl["StartAt"] == "Validate"


def test_every_transition_leads_to_a_state_that_exists(asl: dict[str, Any]) -> None:
    for _name, state, inside in all_states(asl):
        scope = inside["ItemProcessor"]["States"] if inside else asl["States"]
        assert targets(state) <= scope.keys()


def test_moto_s_asl_parser_accepts_the_definition_and_its_local_form() -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    deployed = definition_for("arn:aws:lambda:us-east-1:123456789012:function:dynembed-workflow")
    StepFunctionsParserBackend._validate_definition(definition=deployed)
    StepFunctionsParserBackend._validate_definition(definition=local_definition(deployed))


def test_the_local_definition_differs_from_the_deployed_one_only_in_how_the_backfill_map_runs() -> None:
    # GIVEN the definition CDK deploys and the one the local runtime gives moto
    deployed = json.loads(definition_for("arn:aws:lambda:us-east-1:123456789012:function:f"))
    local = json.loads(local_definition(json.dumps(deployed)))
    # THEN the local Backfill runs inline, with the distributed-only fields gone
    backfill, local_backfill = deployed["States"]["Backfill"], local["States"]["Backfill"]
    assert backfill["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert local_backfill["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    # AND everything else is the same: states, steps, inputs, retries, catches, paths
    for name in ("Label", "ToleratedFailurePercentage", "ToleratedFailureCount", "ItemBatcher"):
        backfill.pop(name, None)
    backfill["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    assert local == deployed


def test_every_task_retries_transient_errors_with_backoff(asl: dict[str, Any]) -> None:
    for name, state, _ in all_states(asl):
        if state["Type"] != "Task":
            continue
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert retried >= TRANSIENT, name
        assert all(r["BackoffRate"] > 1 and r["MaxAttempts"] >= 3 for r in state["Retry"]), name
        # A person's approval is never re-requested on timeout: timing out rejects instead.
        assert ("States.Timeout" in retried) == (name not in APPROVAL_WAITS), name


def test_every_task_is_caught_by_a_state_that_leaves_active_alone(asl: dict[str, Any]) -> None:
    for name, state, inside in all_states(asl):
        if state["Type"] != "Task" or name == "MarkFailed":
            continue
        catcher = inside if inside is not None else state  # a Map's Catch covers its iterations
        catches = catcher.get("Catch", [])
        assert any("States.ALL" in c["ErrorEquals"] for c in catches), name
        assert {c["Next"] for c in catches} <= FAILURE_STATES, name


def test_failure_paths_cannot_reach_promote(asl: dict[str, Any]) -> None:
    states = asl["States"]
    for failure in FAILURE_STATES:
        assert "Promote" not in reachable(states, failure), failure
    assert reachable(states, "MarkFailed") == {"MarkFailed", "RebuildFailed"}
    assert states["RebuildFailed"]["Type"] == "Fail"
    assert states["MarkFailed"]["Parameters"]["Payload"]["step"] == "mark_failed"


def test_promotion_only_when_the_gate_passed(asl: dict[str, Any]) -> None:
    states = asl["States"]
    passed = next(c for c in states["Gate"]["Choices"] if c["Variable"] == "$.evaluation.passed")
    assert passed["BooleanEquals"] is True
    # Without the gate's "passed" edge, nothing reaches Promote.
    assert "Promote" in reachable(states, "Validate")
    assert "Promote" not in reachable(states, "Validate", skip_edge=("Gate", passed["Next"]))
    assert states["Gate"]["Default"] == "GateFailed"
    assert "Reject" in reachable(states, "GateFailed")


def test_backfill_is_a_distributed_map_over_segments_looping_pages(asl: dict[str, Any]) -> None:
    backfill = asl["States"]["Backfill"]
    assert backfill["Type"] == "Map"
    # Child executions, each with its own history: the parent's does not grow with the table.
    assert backfill["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert backfill["ItemsPath"] == "$.register.segments"
    assert backfill["MaxConcurrencyPath"] == "$.register.max_concurrency"
    assert backfill["ItemSelector"]["segment.$"] == "$$.Map.Item.Value"
    assert "ToleratedFailurePercentage" not in backfill and "ToleratedFailureCount" not in backfill
    inner = backfill["ItemProcessor"]["States"]
    page = inner[backfill["ItemProcessor"]["StartAt"]]
    assert page["Parameters"]["Payload"]["step"] == "backfill_page"
    loop = inner[page["Next"]]
    assert loop["Type"] == "Choice"
    assert loop["Default"] == "BackfillPage"  # not done: next page
    assert loop["Choices"][0]["Variable"] == "$.page.done"
    # A finished child returns {} (the Map's output stays small); a failed one records why first.
    finished = inner[loop["Choices"][0]["Next"]]
    assert finished == {**finished, "Type": "Pass", "Result": {}, "End": True}
    failed = inner[page["Catch"][0]["Next"]]
    assert failed["Parameters"]["Payload"]["step"] == "segment_failed"
    assert inner[failed["Next"]]["Type"] == "Fail"


def test_the_estimate_runs_before_anything_is_embedded(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert states["Register"]["Next"] == "Estimate"
    estimate = states["Estimate"]
    assert estimate["Parameters"]["Payload"]["step"] == "estimate"
    assert estimate["ResultPath"] == "$.estimate"
    # Nothing reaches the backfill but through the estimate (and its approval when asked for).
    assert "Backfill" not in reachable(states, "Validate", skip_edge=("Register", "Estimate"))
    ask = states[estimate["Next"]]
    assert ask["Choices"][0]["Variable"] == "$.config.approve_estimate"
    assert ask["Default"] == "AddWriteTarget"
    wait = states[ask["Choices"][0]["Next"]]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["Parameters"]["Payload"]["stage"] == "estimate"
    approved = states[wait["Next"]]
    assert {c["Next"] for c in approved["Choices"]} == {"AddWriteTarget"}
    assert "Reject" in reachable(states, approved["Default"])
    assert "Backfill" not in reachable(states, approved["Default"])
    # The execution's output carries the estimate beside the decision.
    assert states["Promoted"]["Parameters"]["estimate.$"] == "$.estimate"
    assert states["Rejected"]["Parameters"]["estimate.$"] == "$.estimate"


def test_catch_up_is_a_bounded_wait_and_check_loop(asl: dict[str, Any]) -> None:
    states = asl["States"]
    check = states["CheckCatchUp"]
    choice = states[check["Next"]]
    assert choice["Type"] == "Choice"
    wait = states[choice["Default"]]
    assert wait["Type"] == "Wait" and wait["SecondsPath"] == "$.config.catchup_wait_s"
    assert wait["Next"] == "CheckCatchUp"
    outcomes = {c["Variable"]: c["Next"] for c in choice["Choices"]}
    assert outcomes["$.catchup.caught_up"] == "Evaluate"
    assert "MarkFailed" in reachable(states, outcomes["$.catchup.exhausted"])


def test_approval_branch_waits_for_a_task_token_only_when_asked(asl: dict[str, Any]) -> None:
    states = asl["States"]
    required = states["ApprovalRequired"]
    assert required["Choices"][0]["Variable"] == "$.config.require_approval"
    assert required["Default"] == "Promote"
    wait = states[required["Choices"][0]["Next"]]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert wait["TimeoutSecondsPath"] == "$.config.approval_timeout_s"
    approved = states[wait["Next"]]
    assert {c["Next"] for c in approved["Choices"]} == {"Promote"}
    assert "Reject" in reachable(states, approved["Default"])


def test_every_task_names_a_step_the_workflow_function_knows(asl: dict[str, Any]) -> None:
    used = set()
    for name, state, _ in all_states(asl):
        if state["Type"] == "Task":
            assert state["Parameters"]["FunctionName"] == "${WorkflowFunctionArn}", name
            assert state["Parameters"]["Payload"]["step"] in STEP_NAMES, name
            used.add(state["Parameters"]["Payload"]["step"])
    # and the step table has nothing else but the actions ops invoke directly
    assert set(STEP_NAMES) - used == {"rollback", "retire", "targeted_backfill"}
