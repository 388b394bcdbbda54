"""The canary and the end-to-end sentinel on the local stack: moto (DynamoDB, Streams, SQS,
Step Functions), osmem, the pumps and the real handlers. The alarm evaluator reads the figures
as `dynembed status` does: the canary's report from the registry, the sentinel's from the
process's telemetry (the handlers run in it).

The rebuild that promotes the canary's generation is the real state machine (fixtures and
helpers from ``test_rebuild_workflow``); hash-256 keeps it to seconds.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynembed.core.config import METRICS, THRESHOLDS, TUNING
from dynembed.core.models import SENTINEL_DOC_ID, ChunkDocument
from dynembed.core.versioning import WriteRank, external_version
from dynembed.embedders.hashing import hash_vector
from dynembed.quality.canary import run_canary
from dynembed.quality.evaluation import load_golden_set
from dynembed.quality.sentinel import run_sentinel, search_as_sentinel
from dynembed.rebuild.generations import find_active
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.ops import monitor_alarms, monitor_values, monitors_status, queue_depth
from tests.integration import test_rebuild_workflow as rebuilds
from tests.integration.test_rebuild_workflow import TRUNCATING, Golden, rebuild, rebuild_input, start_baseline

# The rebuild tests' fixtures: a fresh local stack with the workflow installed, the FAQ slice.
stack = rebuilds.stack
golden = rebuilds.golden

pytestmark = pytest.mark.integration


def _firing(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """The monitors' alarms on what the stack holds now."""
    svc = stack.services()
    active = find_active(svc.registry)
    latest = monitor_values(svc.telemetry.snapshot(), active.canary if active else None)
    return {row["alarm"]: row for row in monitor_alarms(latest)}


def _corrupt_vectors(stack: LocalStack, index: str, share: float = 0.7, seed: int = 11) -> int:
    """Deliberate damage to the serving index: most chunks' vectors replaced by noise, written
    over with an external version above the sync's own for that source version (what a mixed-up
    model would leave behind)."""
    svc = stack.services()
    svc.index.refresh(index)
    ids = sorted(cid for cid, _ in svc.index.iter_chunks(index, ["doc_id"]))
    rng = random.Random(seed)
    chosen = [cid for cid in ids if rng.random() < share]
    stored = svc.index.get_chunks(index, chosen)
    docs = [
        ChunkDocument(**{**source, "embedding": hash_vector(f"noise {rng.random()}").tolist()})
        for source in stored.values()
    ]
    report = svc.index.write_chunks(
        index, docs, versions=[external_version(d.source_version, WriteRank.DELETE) for d in docs]
    )
    svc.index.refresh(index)
    return report.written


def test_the_canary_of_a_promoted_generation_catches_its_degradation(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN a generation promoted by the real rebuild workflow
    start_baseline(stack, golden, chunker=TRUNCATING)
    out = rebuild(stack, rebuild_input(golden))
    assert out["decision"] == "promoted", out["evaluation"]["reasons"]
    svc = stack.services()
    active = svc.registry.get(out["generation_id"])
    # AND its stored report records the golden set, principal and k it was gated on
    assert active.report is not None
    assert active.report["eval_set"] == {"queries": str(golden.queries), "qrels": str(golden.qrels)}
    assert (active.report["eval_principal"], active.report["k"]) == (["reader"], 10)

    # WHEN the canary function runs on schedule, nothing having changed
    from dynembed_ops.local.lambda_runtime import invoke
    from dynembed_ops.local.stack import SCHEDULED_EVENT

    healthy = invoke("canary", dict(SCHEDULED_EVENT), TUNING.canary_timeout_s)
    # THEN it measured the promotion figures again: no drop, every probe passed, no alarm fires
    assert healthy["summary"]["reference"] == "promotion" and healthy["summary"]["passed"], healthy
    record = svc.registry.get(active.id).canary
    assert record is not None
    assert record["metrics"] == pytest.approx(active.report["candidate_metrics"])
    firing = _firing(stack)
    assert not any(firing[name]["firing"] for name in ("CanaryNdcgDrop", "CanaryRecallDrop", "CanaryMrrDrop"))
    assert not firing["CanaryProbeFailures"]["firing"]

    # WHEN most of its vectors are corrupted and the canary runs again
    assert _corrupt_vectors(stack, active.index_name) > 0
    degraded = run_canary(svc, settle_s=0)
    # THEN nDCG fell past the stack's margin, and the nDCG alarm would fire on the published drop
    assert degraded["drops"]["ndcg"] > THRESHOLDS.canary_max_drop and not degraded["passed"]
    assert _firing(stack)["CanaryNdcgDrop"]["firing"]
    # AND the figures by generation are published too, for graphs per generation
    gauges = svc.telemetry.gauges
    for name in (METRICS.canary_ndcg, METRICS.canary_ndcg_drop, METRICS.canary_probe_failures):
        assert f"{name}[generation={active.id}]" in gauges


def test_the_scheduled_sentinel_measures_the_whole_path(stack: LocalStack) -> None:
    # GIVEN a serving generation and the pumps running
    stack.services().bootstrap("hash-256")
    with stack.background(interval_s=0.05):
        # WHEN the local schedule fires the sentinel function (the first time at once)
        stack.start_schedules({"sentinel": 3600}, {"sentinel": TUNING.sentinel_timeout_s})
        deadline = time.monotonic() + 60
        while _firing(stack)["EndToEndDelete"]["missing"] and time.monotonic() < deadline:
            time.sleep(0.2)
        stack.stop_schedules()
        firing = _firing(stack)
    # THEN both times were published, well under the thresholds, and no end-to-end alarm fires
    assert not firing["EndToEndFreshness"]["firing"] and not firing["EndToEndDelete"]["firing"], firing
    assert 0 < firing["EndToEndFreshness"]["value"] < THRESHOLDS.sentinel_freshness_s
    # AND the sentinel's item is gone from the source table
    assert stack.services().source.get_item(SENTINEL_DOC_ID) is None


@pytest.fixture
def classify_only(stack: LocalStack) -> Iterator[None]:
    """The stream side runs (classify enqueues jobs); the sync side is stopped."""
    stop = threading.Event()

    def pump() -> None:
        assert stack.stream_pump is not None
        while not stop.is_set():
            stack.stream_pump.step()
            stop.wait(0.05)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def test_with_the_sync_side_stopped_the_sentinel_times_out_and_its_alarms_fire(
    stack: LocalStack, classify_only: None
) -> None:
    # GIVEN a serving generation whose sync function has stopped (jobs wait in the queue)
    svc = stack.services()
    svc.bootstrap("hash-256")
    # WHEN the sentinel runs with a short wait
    result = run_sentinel(svc.schema, svc.sentinel_writer, search_as_sentinel(svc), svc.telemetry, wait_s=3)
    # THEN its write never became searchable, which it says (no value is published)
    assert result.freshness_timed_out and result.freshness_s is not None and result.freshness_s >= 3
    assert result.delete_s is None and "stalled" in result.notes[0]
    assert queue_depth(svc.sqs, svc.settings.jobs_queue_url).visible >= 1  # its job is waiting
    # AND with the stack's alarms both end-to-end alarms fire (missing data breaches)
    firing = _firing(stack)
    assert firing["EndToEndFreshness"]["firing"] and firing["EndToEndDelete"]["firing"]
    assert firing["EndToEndFreshness"]["missing"] and firing["EndToEndDelete"]["missing"]
    # AND the item was removed from the source all the same
    assert svc.source.get_item(SENTINEL_DOC_ID) is None


def test_the_demo_runs_both_monitors_and_writes_the_html_report(
    stack: LocalStack, golden: Golden, tmp_path: Path
) -> None:
    # GIVEN the demo's state on a serving generation (the FAQ slice, hash-256, nothing rebuilt)
    from rich.console import Console

    from dynembed_ops.demo.monitors import run_monitors
    from dynembed_ops.demo.state import DemoOptions, DemoState

    start_baseline(stack, golden)
    options = DemoOptions(queries=golden.queries, qrels=golden.qrels, json_out=tmp_path / "summary.json")
    state = DemoState(
        stack, options, Console(file=io.StringIO()), load_golden_set(golden.queries, golden.qrels)
    )
    # WHEN the demo's monitors part runs
    run_monitors(state)
    # THEN the summary carries the canary's and the sentinel's figures, shadow as nulls, the report path
    summary = state.summary
    assert set(summary["canary"]) >= {"ndcg@10", "recall@10", "mrr@10", "weak_retrieval_rate"}
    assert summary["canary"]["weak_retrieval_rate"] is None and summary["canary"]["ndcg_drop"] == 0.0
    assert summary["sentinel"]["freshness_s"] > 0 and summary["sentinel"]["delete_s"] > 0
    assert summary["shadow"] == {"queries": None, "overlap@10": None, "rbo": None}
    assert summary["monitor_alarms_firing"] == []
    # AND the HTML report, beside the --json file, has the canary and the sentinel's figures in it
    page = Path(summary["report_html"])
    assert page.parent == tmp_path and page.is_file()
    html = page.read_text()
    assert 'data-section="canary"' in html and "sentinel edit searchable after" in html
    # AND `dynembed status` reads the same figures back
    status = monitors_status(stack.services(), stack.services().telemetry.snapshot())
    assert status["canary"]["ndcg@10"] == summary["canary"]["ndcg@10"]
    assert status["sentinel"]["freshness_s"] == pytest.approx(summary["sentinel"]["freshness_s"])
