"""`dynembed demo` with a retrieval or precision candidate takes the same rebuild path as a model
change: the real state machine, the gate, promotion or rejection, rollback; nothing is embedded
for the candidate, and the summary says how it retrieves. hash-256 on a slice of the FAQ set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from dynembed.core.models import RetrievalSpec, VectorSpec
from dynembed_ops import paths
from dynembed_ops.demo.run import DemoOptions, run_demo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faq_slice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("demo-slice")
    queries = [json.loads(line) for line in paths.FAQ_QUERIES.read_text().splitlines()[:20]]
    wanted = {q["query_id"] for q in queries}
    qrels = [
        row
        for row in (line.split("\t") for line in paths.FAQ_QRELS.read_text().splitlines())
        if row[0] in wanted
    ]
    relevant = {row[1] for row in qrels}
    corpus = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()]
    docs = [d for d in corpus if d["doc_id"] in relevant] + [
        d for d in corpus if d["doc_id"] not in relevant
    ][:20]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (folder / "qrels.tsv").write_text("\n".join("\t".join(row) for row in qrels))
    return folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels.tsv"


@pytest.mark.parametrize(
    ("retrieval", "vectors"),
    [
        (RetrievalSpec(mode="hybrid"), VectorSpec()),
        (RetrievalSpec(), VectorSpec(precision="binary", oversample=3.0)),
    ],
)
def test_the_demo_rebuilds_to_a_retrieval_or_precision_candidate(
    faq_slice: tuple[Path, Path, Path],
    retrieval: RetrievalSpec,
    vectors: VectorSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    corpus, queries, qrels = faq_slice
    options = DemoOptions(
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        edits=None,
        baseline_model="hash-256",
        candidate_model="hash-256",
        candidate_retrieval=retrieval,
        candidate_vectors=vectors,
    )
    # The demo's stack puts the environment back when it stops.
    summary = run_demo(options, Console(file=open(os.devnull, "w")))  # noqa: SIM115
    candidate = summary["evaluation_candidate"]
    assert candidate["retrieval"]["mode"] == retrieval.mode.value
    assert candidate["precision"] == vectors.precision.value
    assert summary["embeddings_computed"] == 0 and summary["embeddings_reused"] > 0
    # hybrid: BM25 helps hash-256; binary rescoring every candidate at full precision loses nothing
    assert summary["decision"] == "promoted" and summary["rollback_ok"] is True
    assert candidate["memory_per_vector_bytes"] <= summary["evaluation_baseline"]["memory_per_vector_bytes"]
    # AND users searched while the candidate built: their queries were shadowed on it, and the
    # report compares the two answers
    shadow = summary["shadow"]
    assert shadow["queries"] >= 1 and 0.0 <= shadow["overlap@10"] <= 1.0 and 0.0 <= shadow["rbo"] <= 1.0
