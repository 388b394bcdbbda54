"""A 50-million-item backfill against Step Functions' limits, computed from the deployed
definition (rebuild.asl.json) and from the real steps' outputs on fakes:

- history: a Standard execution holds at most 25,000 events. The parent's count does not grow
  with the table (the Backfill is a Distributed Map: each segment is a child execution with its
  own history); each child's grows with its pages and must fit even at one page per task;
- payloads: a state's input or output is at most 256 KB (262,144 bytes);
- the candidate's registry item (progress + report) is at most 400 KB (DynamoDB).

Event counts per state follow the Step Functions history event types: a Task with a service
integration emits Entered, Scheduled, Started, Succeeded, Exited (5) and 3 more per retry
(Scheduled, Started, Failed); Pass, Choice, Wait and Succeed emit Entered and Exited (2); a
Distributed Map emits 6 in the parent (MapStateEntered, MapStateStarted, MapRunStarted,
MapRunSucceeded, MapStateSucceeded, MapStateExited) whatever its item count; an execution adds
Started and Succeeded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from dynembed.core.config import Settings
from dynembed.core.schema import SourceSchema
from dynembed.rebuild import plan, steps
from dynembed.rebuild.evaluate import MAX_REPORT_BYTES
from dynembed.rebuild.inputs import RebuildInput
from dynembed.rebuild.progress import MAX_FAILED_DOC_IDS_TOTAL, BackfillProgress, SegmentProgress
from dynembed.wiring import Services
from dynembed_ops.local.stepfunctions import definition_path
from tests.fakes import (
    InMemoryBlobs,
    InMemoryCache,
    InMemoryIndex,
    InMemoryLedger,
    InMemoryProgressStore,
    InMemoryRegistry,
    SyntheticSource,
    services_over,
)

pytestmark = pytest.mark.unit

ITEMS = 50_000_000
HISTORY_LIMIT = 25_000
PAYLOAD_LIMIT = 262_144
ITEM_LIMIT = 400 * 1024
SEGMENT_SKEW = 1.1
"""The largest segment's items over the mean: a parallel scan splits the key-hash space evenly,
so with tens of millions of random keys the segments differ by a few percent."""
RETRIED_SHARE = 0.1
"""Tasks that fail once and are retried (throttling, timeouts)."""
TASK_EVENTS, LIGHT_EVENTS, EXECUTION_EVENTS, RETRY_EVENTS, DISTRIBUTED_MAP_EVENTS = 5, 2, 2, 3, 6


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(definition_path().read_text(encoding="utf-8"))


def events_of(state: dict[str, Any]) -> int:
    if state["Type"] == "Task":
        return TASK_EVENTS
    if state["Type"] == "Map":
        assert state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
        return DISTRIBUTED_MAP_EVENTS
    return 1 if state["Type"] == "Fail" else LIGHT_EVENTS


def walk(states: dict[str, Any], start: str, choose: Callable[[str, dict[str, Any]], str]) -> list[str]:
    """The states one execution enters, taking ``choose(name, state)`` at each Choice."""
    path, name = [], start
    while True:
        state = states[name]
        path.append(name)
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            return path
        name = choose(name, state) if state["Type"] == "Choice" else state["Next"]


@dataclass
class Chooser:
    """Approvals asked for and given, the gate passed, ``checks`` catch-up checks."""

    checks: int
    seen: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str, state: dict[str, Any]) -> str:
        self.seen[name] = self.seen.get(name, 0) + 1
        choices = {c["Variable"]: c["Next"] for c in state["Choices"]}
        if name == "CaughtUp":
            return choices["$.catchup.caught_up"] if self.seen[name] >= self.checks else state["Default"]
        return next(iter(choices.values()))  # approval required / approved / gate passed


def history(path: list[str], states: dict[str, Any], retried_share: float) -> int:
    tasks = sum(1 for n in path if states[n]["Type"] == "Task")
    return (
        EXECUTION_EVENTS
        + sum(events_of(states[n]) for n in path)
        + math.ceil(tasks * retried_share) * RETRY_EVENTS
    )


def child_history(asl: dict[str, Any], pages: int, pages_per_task: int) -> int:
    processor = asl["States"]["Backfill"]["ItemProcessor"]
    inner = processor["States"]
    tasks = math.ceil(pages / pages_per_task)
    remaining = {"n": tasks}

    def loop(name: str, state: dict[str, Any]) -> str:
        remaining["n"] -= 1
        return state["Choices"][0]["Next"] if remaining["n"] <= 0 else state["Default"]

    return history(walk(inner, processor["StartAt"], loop), inner, RETRIED_SHARE)


def test_the_parent_history_does_not_grow_with_the_table(asl: dict[str, Any]) -> None:
    states = asl["States"]
    config = RebuildInput(model="bedrock-titan-v2-1024")
    # GIVEN the longest happy path: both approvals, the most catch-up checks the input allows,
    # and a retry on every task
    longest = walk(states, asl["StartAt"], Chooser(checks=1000))
    assert {"Estimate", "WaitForEstimateApproval", "Backfill", "WaitForApproval", "Promote"} <= set(longest)
    worst = history(longest, states, retried_share=1.0)
    typical = history(walk(states, asl["StartAt"], Chooser(checks=config.catchup_max_checks)), states, 0.1)
    # THEN it fits, and no count above depends on the item count (the Map's children are apart)
    assert worst < HISTORY_LIMIT, worst
    assert typical < HISTORY_LIMIT / 50, typical


def test_each_segment_s_child_history_fits_even_at_one_page_per_task(asl: dict[str, Any]) -> None:
    config = RebuildInput(model="bedrock-titan-v2-1024")
    segments = plan.segments_for(ITEMS, config.backfill_segments, 1000)
    pages = math.ceil(ITEMS / segments * SEGMENT_SKEW / config.page_size)
    typical = child_history(asl, pages, config.pages_per_task)
    slowest = child_history(asl, pages, 1)  # the Lambda's time let each task do a single page
    assert segments == 250
    assert typical < HISTORY_LIMIT / 10, typical
    assert slowest < HISTORY_LIMIT / 1.25, slowest


def scale_services() -> Services:
    """The production wiring over a 50-million-item synthetic table, every adapter a fake."""
    registry = InMemoryRegistry()
    return services_over(
        Settings(),
        SourceSchema(content_attributes=("title", "body"), access_attributes=("acl",)),
        source=SyntheticSource(ITEMS),
        registry=registry,
        index=InMemoryIndex(),
        cache=InMemoryCache(),
        ledger=InMemoryLedger(),
        progress=InMemoryProgressStore(registry),
        blobs=InMemoryBlobs(),
    )


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def test_state_payloads_stay_far_below_256_kb(asl: dict[str, Any]) -> None:
    # GIVEN the real steps' outputs for a 50 M-item table, with an input as long as allowed
    svc = scale_services()
    raw = {
        "model": "bedrock-titan-v2-1024",
        "eval": {"queries": "data/python-faq/queries.jsonl", "qrels": "data/python-faq/qrels.tsv"},
        "comment": "c" * 1000,
        "eval_principal": [f"group-{n:02d}" for n in range(20)],
        "approve_estimate": True,
        "require_approval": True,
    }
    state: dict[str, Any] = steps.validate(svc, raw)
    config = steps.parse_rebuild_input(state["config"])
    state["register"] = steps.register(svc, config)
    state["estimate"] = steps.estimate(svc, config)
    state["approval"] = {"approved": True, "by": "x" * 200, "reason": "r" * 1000, "at": 0.0}
    state["write_target"] = {
        "write_targets": [f"g{n:02d}-bedrock-titan-v2-1024-structural-05001931" for n in range(6)]
    }
    state["catchup"] = {k: 0 for k in asl["States"]["CheckCatchUp"]["ResultSelector"]}
    state["evaluation"] = {
        **{k.removesuffix(".$"): "v" * 100 for k in asl["States"]["Evaluate"]["ResultSelector"]},
        "reasons": ["r" * 300] * 10,
        "estimate": {f"figure {n}": {"estimate": 1e12, "actual": 1e12, "error": 0.1} for n in range(6)},
    }
    # THEN the register output lists every segment, and the largest state is tiny next to 256 KB
    assert len(state["register"]["segments"]) == 250 and state["register"]["max_concurrency"] >= 1
    assert size(state) < PAYLOAD_LIMIT / 10, size(state)
    # AND so is what each child execution receives (its ItemSelector) ...
    child_input = {"config": state["config"], "segment": 249}
    assert size(child_input) < PAYLOAD_LIMIT / 50
    # ... and the Map's collected output: {} per segment, even at the most segments allowed
    finished = asl["States"]["Backfill"]["ItemProcessor"]["States"]["SegmentFinished"]
    assert size([finished["Result"]] * 1000) < PAYLOAD_LIMIT / 50


def test_the_candidate_s_registry_item_fits_with_a_full_report(asl: dict[str, Any]) -> None:
    # GIVEN the progress of 250 segments midway, keys of 100 bytes, the most failed ids kept
    segments = plan.segments_for(ITEMS, None, 1000)
    per_segment = MAX_FAILED_DOC_IDS_TOTAL // segments + 1
    progress = BackfillProgress(
        total_segments=segments,
        page_size=100,
        segments={
            n: SegmentProgress(
                last_key={"doc_id": "k" * 100},
                pages=9_999,
                docs=999_999,
                computed=9_999_999,
                reused=9_999_999,
                tokens=9_999_999_999,
                failures=999,
                failed_docs=[f"doc-{n}-{m:030d}" for m in range(per_segment)],
            )
            for n in range(segments)
        },
    )
    # THEN it and a report at its trimming limit fit one DynamoDB item with room to spare
    assert size(progress.record()) + MAX_REPORT_BYTES < ITEM_LIMIT * 0.95, size(progress.record())
