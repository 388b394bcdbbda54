"""The rebuild state machine on moto: the same ``rebuild.asl.json`` the CDK stack deploys, run
by moto's ASL interpreter, its Lambda tasks dispatched in-process to the real handlers.

moto's "simple" Lambda backend (no Docker) only echoes payloads; ``install_lambda_dispatch``
replaces its ``invoke`` so a function named ``dynembed-<name>`` runs ``functions/<name>/handler.py``
with a Lambda context, and an exception becomes a function error (``x-amz-function-error``) with
the exception's class as ``errorType`` — what Step Functions' Retry and Catch match on, as on AWS.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import traceback
import uuid
import zipfile
from pathlib import Path
from typing import Any

from dynembed import rebuild
from dynembed.core.config import NAMES, TUNING
from dynembed.core.errors import DynembedError

FUNCTION_PREFIX = "dynembed-"
WORKFLOW_FUNCTION = f"{FUNCTION_PREFIX}workflow"
PLACEHOLDER = "${WorkflowFunctionArn}"
_TIMEOUTS = {
    "workflow": TUNING.workflow_timeout_s,
    "sync": TUNING.sync_timeout_s,
    "classify": TUNING.classify_timeout_s,
}
_install_lock = threading.Lock()
_original_invoke: Any = None


def definition_path() -> Path:
    """The definition inside the installed runtime package (the same file the CDK stack deploys)."""
    return Path(rebuild.__file__).with_name("rebuild.asl.json")


def definition_for(function_arn: str) -> str:
    """The definition with the workflow function's ARN substituted, as the CDK stack does."""
    return definition_path().read_text(encoding="utf-8").replace(PLACEHOLDER, function_arn)


DISTRIBUTED_ONLY_FIELDS = ("Label", "ToleratedFailurePercentage", "ToleratedFailureCount", "ItemBatcher")


def local_definition(definition: str) -> str:
    """What moto runs: the deployed definition with each Distributed Map run inline.

    moto 5.2.5 interprets ``Mode: DISTRIBUTED`` but not as AWS does: a failed child execution
    is counted and the Map still succeeds (``DistributedItemProcessorWorker._eval_job``), and
    the children's histories are dropped. Inline, the same item processor runs the same steps
    on the same items, and a child's failure fails the Map as AWS's zero tolerance does
    (``tests/integration/test_moto_distributed_map.py`` watches for moto changing this;
    ``tests/unit/test_rebuild_asl.py`` checks nothing else differs)."""
    document = json.loads(definition)

    def inline(states: dict[str, Any]) -> None:
        for state in states.values():
            if state.get("Type") != "Map":
                continue
            processor = state["ItemProcessor"]
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                processor["ProcessorConfig"] = {"Mode": "INLINE"}
                for name in DISTRIBUTED_ONLY_FIELDS:
                    state.pop(name, None)
            inline(processor["States"])

    inline(document["States"])
    return json.dumps(document, indent=2)


def _function_name(name_or_arn: str) -> str:
    # FunctionName may arrive as a name, a full ARN, or a qualified ARN (…:function:name:alias).
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        return parts[6] if len(parts) > 6 else name_or_arn
    return name_or_arn


def _dispatching_invoke(
    self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> Any:
    from dynembed_ops.local.lambda_runtime import functions_dir, invoke

    name = _function_name(function_name)
    short = name.removeprefix(FUNCTION_PREFIX)
    if not name.startswith(FUNCTION_PREFIX) or not (functions_dir() / short / "handler.py").exists():
        return _original_invoke(self, function_name, qualifier, body, headers, response_headers)
    raw = body.decode() if isinstance(body, bytes) else body
    event = json.loads(raw) if raw else {}
    try:
        result = invoke(short, event, _TIMEOUTS.get(short, 60))
    except Exception as exc:  # becomes the task's error, as Lambda reports an unhandled exception
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        ).encode()
    return json.dumps(result, default=str).encode()


def install_lambda_dispatch() -> None:
    """Patch moto's Docker-less Lambda backend once per process (idempotent)."""
    global _original_invoke
    from moto.awslambda_simple.models import LambdaSimpleBackend

    # moto logs every failed state with its whole parse tree; the execution history has it all.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    with _install_lock:
        if _original_invoke is None:
            _original_invoke = LambdaSimpleBackend.invoke
            LambdaSimpleBackend.invoke = _dispatching_invoke  # type: ignore[method-assign]


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def _role_arn(iam: Any, name: str, service: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def install_rebuild_workflow(stack: Any) -> str:
    """Create (or update) the workflow function and the rebuild state machine on the stack's moto;
    returns the state machine ARN. Safe to call again."""
    install_lambda_dispatch()
    lam, sfn, iam = stack.client("lambda"), stack.client("stepfunctions"), stack.client("iam")
    try:
        function_arn = str(lam.get_function(FunctionName=WORKFLOW_FUNCTION)["Configuration"]["FunctionArn"])
    except lam.exceptions.ResourceNotFoundException:
        function_arn = str(
            lam.create_function(
                FunctionName=WORKFLOW_FUNCTION,
                Runtime="python3.11",
                Role=_role_arn(iam, "dynembed-workflow-function", "lambda.amazonaws.com"),
                Handler="handler.handler",
                Code={"ZipFile": _dummy_zip()},
                Timeout=TUNING.workflow_timeout_s,
                MemorySize=1024,
            )["FunctionArn"]
        )
    definition = local_definition(definition_for(function_arn))
    existing = state_machine_arn(sfn)
    if existing is not None:
        sfn.update_state_machine(stateMachineArn=existing, definition=definition)
        return existing
    return str(
        sfn.create_state_machine(
            name=NAMES.rebuild_state_machine,
            definition=definition,
            roleArn=_role_arn(iam, "dynembed-rebuild-state-machine", "states.amazonaws.com"),
            type="STANDARD",
        )["stateMachineArn"]
    )


def state_machine_arn(sfn: Any) -> str | None:
    """The rebuild state machine on this endpoint, if installed."""
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == NAMES.rebuild_state_machine:
                return str(machine["stateMachineArn"])
    return None


class RebuildFailed(DynembedError):
    """The execution ended in FAILED, TIMED_OUT or ABORTED; the message carries the cause."""

    def __init__(self, message: str, execution_arn: str, error: str | None, cause: str | None) -> None:
        super().__init__(message)
        self.execution_arn = execution_arn
        self.error = error
        self.cause = cause


def start_rebuild(sfn: Any, machine_arn: str, rebuild_input: dict[str, Any], name: str | None = None) -> str:
    """Start an execution; its name says which generation it builds (moto, unlike AWS, does not
    generate a unique name when none is given)."""
    generation = str(rebuild_input.get("generation_id") or "rebuild")
    name = name or f"{generation[:60]}-{uuid.uuid4().hex[:12]}"
    execution = sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(rebuild_input))
    return str(execution["executionArn"])


def wait_for_execution(sfn: Any, execution_arn: str, timeout_s: float, poll_s: float = 0.2) -> dict[str, Any]:
    """The execution's output once it succeeds; RebuildFailed (with the cause) otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        if status == "SUCCEEDED":
            output: dict[str, Any] = json.loads(described.get("output") or "{}")
            return output
        if status in {"FAILED", "TIMED_OUT", "ABORTED"}:
            error, cause = described.get("error"), described.get("cause")
            raise RebuildFailed(
                f"rebuild {status.lower()}: {error or 'error'}: {_readable(cause)}",
                execution_arn,
                error,
                cause,
            )
        if time.monotonic() > deadline:
            raise RebuildFailed(
                f"rebuild still {status.lower()} after {timeout_s:.0f} s", execution_arn, "Timeout", None
            )
        time.sleep(poll_s)


def _readable(cause: str | None) -> str:
    """A Lambda error's message rather than its JSON."""
    if not cause:
        return "no cause given"
    try:
        parsed = json.loads(cause)
    except json.JSONDecodeError:
        return cause
    return str(parsed.get("errorMessage", cause)) if isinstance(parsed, dict) else cause


def run_rebuild(stack: Any, rebuild_input: dict[str, Any], timeout_s: float = 600.0) -> dict[str, Any]:
    """Start the rebuild state machine on the local stack and wait for its output. The pumps
    must be running (``stack.background()``) if the catch-up should see live changes land."""
    install_lambda_dispatch()
    sfn = stack.client("stepfunctions")
    machine = state_machine_arn(sfn) or install_rebuild_workflow(stack)
    return wait_for_execution(sfn, start_rebuild(sfn, machine, rebuild_input), timeout_s)
