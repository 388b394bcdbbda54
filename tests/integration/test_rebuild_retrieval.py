"""Generations that change how retrieval works, through the real rebuild state machine (moto's
interpreter, osmem, the pumps running): a hybrid candidate and a precision-only candidate with
the model and chunker of the active generation are built without embedding anything, gated on
the golden set, promoted or rejected, and rolled back; the access filter holds in both hybrid
sub-queries. hash-256 (no model load) on the FAQ slice of test_rebuild_workflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynembed.core.models import GenerationStatus, VectorPrecision
from dynembed.embedders.catalog import get_embedder, spec_for
from dynembed.embedders.counting import CountingEmbedder
from dynembed.quality.report import render_markdown_report
from dynembed.rebuild import steps
from dynembed_ops.local.stack import LocalStack
from tests.events import load_event
from tests.integration import test_rebuild_workflow as workflow
from tests.integration.test_rebuild_workflow import (
    READER,
    Golden,
    SourceWriter,
    alias_target,
    docs_found,
    hits,
    rebuild,
    rebuild_input,
    start_baseline,
    watch_alias,
)

pytestmark = pytest.mark.integration

stack = workflow.stack
golden = workflow.golden
"""The workflow tests' fixtures: a fresh local stack with the rebuild workflow; the FAQ slice."""


def counting_embedder(stack: LocalStack) -> CountingEmbedder:
    """Every text the rebuild (and the pumps) embed from now on, counted."""
    svc = stack.services()
    counting = CountingEmbedder(get_embedder("hash-256"))
    svc._embedders[spec_for("hash-256").model_id] = counting
    return counting


def test_a_hybrid_candidate_reuses_every_vector_is_promoted_and_rolls_back(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN hash-256 serving by k-NN alone, and an embedder that counts what it embeds
    svc = stack.services()
    baseline = start_baseline(stack, golden)
    counting = counting_embedder(stack)
    before = hits(svc, golden.first_query)
    alias_before = alias_target(svc)
    # WHEN the console's hybrid example (same model, same chunker) is rebuilt
    example = load_event("rebuild_input_hybrid")
    out = rebuild(
        stack, rebuild_input(golden, retrieval=example["retrieval"], threshold=example["threshold"])
    )
    # THEN nothing was embedded: every vector came from the cache
    evaluation = out["evaluation"]
    assert counting.document_texts == 0
    assert evaluation["embeddings"]["computed"] == 0 and evaluation["embeddings"]["reused"] > 0
    # AND the gate promoted it on better metrics, with the trade-off in the report
    assert out["decision"] == "promoted", evaluation["reasons"]
    assert evaluation["candidate"]["ndcg"] > evaluation["baseline"]["ndcg"]
    assert evaluation["retrieval"] == "hybrid linear lexical 0.30" and evaluation["precision"] == "float32"
    assert (
        evaluation["index"]["memory_per_vector_bytes"]
        == evaluation["baseline_index"]["memory_per_vector_bytes"]
    )
    assert (
        evaluation["index"]["latency_ms"]["p50"] > 0 and evaluation["baseline_index"]["latency_ms"]["p95"] > 0
    )
    candidate = svc.registry.get(out["generation_id"])
    assert "hybrid-linear" in candidate.id and candidate.retrieval.hybrid
    assert (candidate.status, alias_target(svc)) == (GenerationStatus.ACTIVE, candidate.index_name)
    markdown = Path(evaluation["report_location"]).read_text()
    assert markdown == render_markdown_report(candidate.report or {})
    assert "| retrieval | hybrid linear lexical 0.30 | vector |" in markdown and "memory / vector" in markdown
    # AND its calibrated threshold is stored and comes back with every search
    assert candidate.threshold is not None
    assert candidate.threshold.value == pytest.approx(evaluation["threshold"], abs=1e-6)
    response = svc.search(golden.first_query, READER)
    assert (response.generation, response.threshold) == (candidate.id, candidate.threshold.value)
    assert response.retrieval.startswith("hybrid")
    assert all(r.below_threshold == (r.score < candidate.threshold.value) for r in response.results)

    # WHEN ops roll back
    move = steps.rollback(svc)
    # THEN the vector generation serves the same results as before
    assert move["after"] == alias_before == baseline.index_name
    assert hits(svc, golden.first_query) == before
    assert svc.registry.get(candidate.id).status is GenerationStatus.STANDBY


def test_a_worse_hybrid_candidate_is_rejected_and_the_alias_never_moves(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN k-NN at float32 serving
    svc = stack.services()
    baseline = start_baseline(stack, golden)
    # WHEN the candidate fuses BM25 with 1-bit vectors scored without rescoring
    with watch_alias(svc) as seen:
        out = rebuild(
            stack,
            rebuild_input(
                golden, retrieval={"mode": "hybrid", "lexical_weight": 0.1}, vectors={"precision": "binary"}
            ),
        )
    # THEN the gate rejected it on the numbers; the active generation never stopped serving
    assert out["decision"] == "rejected"
    assert any("dropped" in reason for reason in out["reasons"]), out["reasons"]
    assert seen == {baseline.index_name}
    candidate = svc.registry.get(out["generation_id"])
    assert (candidate.status, candidate.write_target) == (GenerationStatus.FAILED, False)
    assert candidate.quantizer is not None and candidate.quantizer.precision is VectorPrecision.BINARY


def test_a_precision_only_candidate_embeds_nothing_reports_its_memory_and_rolls_back(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN float32 k-NN serving, and an embedder that counts
    svc = stack.services()
    baseline = start_baseline(stack, golden)
    counting = counting_embedder(stack)
    before = hits(svc, golden.first_query)
    # WHEN the console's binary example (on disk, rescoring 3x) is rebuilt, same model and chunker
    out = rebuild(stack, rebuild_input(golden, vectors=load_event("rebuild_input_binary")["vectors"]))
    # THEN no text was embedded, the quantizer was trained and stored, and the index is mapped 32x on disk
    evaluation = out["evaluation"]
    assert counting.document_texts == 0 and evaluation["embeddings"]["computed"] == 0
    candidate = svc.registry.get(out["generation_id"])
    assert candidate.quantizer is not None and candidate.quantizer.thresholds
    field = svc.index._client.indices.get_mapping(index=candidate.index_name)[candidate.index_name]
    embedding = field["mappings"]["properties"]["embedding"]
    assert (embedding["mode"], embedding["compression_level"]) == ("on_disk", "32x")
    # AND rescoring every candidate at full precision lost nothing on this slice: promoted
    assert out["decision"] == "promoted", evaluation["reasons"]
    assert evaluation["candidate"] == evaluation["baseline"]
    # AND the report shows the memory saved: 1.1 x (256 / 8 + 128) against 1.1 x (4 x 256 + 128)
    assert evaluation["index"]["memory_per_vector_bytes"] == pytest.approx(1.1 * (32 + 128), abs=0.1)
    assert evaluation["baseline_index"]["memory_per_vector_bytes"] == pytest.approx(
        1.1 * (1024 + 128), abs=0.1
    )
    assert svc.search(golden.first_query, READER).precision == "binary, on disk, rescore x3"

    # WHEN ops roll back THEN the float32 generation serves exactly as before
    steps.rollback(svc)
    assert alias_target(svc) == baseline.index_name
    assert hits(svc, golden.first_query) == before


def test_a_revoked_principal_gets_no_hit_from_either_hybrid_sub_query(
    stack: LocalStack, golden: Golden
) -> None:
    # GIVEN a hybrid generation serving
    svc = stack.services()
    start_baseline(stack, golden)
    out = rebuild(stack, rebuild_input(golden, retrieval={"mode": "hybrid", "lexical_weight": 0.9}))
    assert out["decision"] == "promoted", out["evaluation"]["reasons"]
    # AND a doc found by its own distinctive words
    app = SourceWriter(stack)
    doc_id = sorted(golden.tenants)[0]
    app.update(doc_id, {"body": "Zebracorn quasarpine velvetmoss answer."})
    stack.drain()
    assert doc_id in docs_found(svc, "zebracorn quasarpine velvetmoss", READER)
    # WHEN its access is revoked to staff only
    app.update(doc_id, {"acl": ["staff"]})
    stack.drain()
    # THEN the reader finds it neither by its words nor by its vector; staff still do
    assert doc_id not in docs_found(svc, "zebracorn quasarpine velvetmoss", READER)
    assert doc_id in docs_found(svc, "zebracorn quasarpine velvetmoss", ["staff"])
