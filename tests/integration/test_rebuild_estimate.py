"""The Estimate state's figures against what the rebuild then did, on the local stack (moto's
interpreter running the deployed definition, osmem, the real handlers): 400 FAQ docs, an
estimate from a 150-item sample, a candidate with a smaller chunker (so some chunk texts are new
and some come from the cache). The demo's rebuild (1,500 docs, static-64 → minilm) prints the
same comparison; both must agree within 15%."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynembed.core.models import ChunkerSpec
from dynembed.core.schema import SourceSchema
from dynembed.embedders.catalog import spec_for
from dynembed.quality.report import render_markdown_report
from dynembed.rebuild.generations import bootstrap, new_generation
from dynembed.wiring import reset_services
from dynembed_ops import paths
from dynembed_ops.local.stack import LocalStack
from dynembed_ops.local.stepfunctions import run_rebuild
from dynembed_ops.source_app import source_app_for

pytestmark = pytest.mark.integration

SCHEMA = SourceSchema(content_attributes=("title", "body"), access_attributes=("acl",))
DOCS = 400
QUERIES = 20


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStack, dict[str, Any]]]:
    saved = dict(os.environ)
    monkeypatch.setenv("DYNEMBED_REPORTS_DIR", str(tmp_path / "reports"))
    queries = [json.loads(line) for line in paths.FAQ_QUERIES.read_text().splitlines()[:QUERIES]]
    wanted = {q["query_id"] for q in queries}
    qrels = [
        row
        for row in (line.split("\t") for line in paths.FAQ_QRELS.read_text().splitlines())
        if row[0] in wanted
    ]
    corpus = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()][:DOCS]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps({**d, "acl": ["public"]}) for d in corpus))
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (tmp_path / "qrels.tsv").write_text("\n".join("\t".join(r) for r in qrels))
    local = LocalStack(schema=SCHEMA).start()
    try:
        svc = local.services()
        gen = new_generation(spec_for("hash-256"), ChunkerSpec(), svc.settings.index_prefix)
        bootstrap(svc.registry, svc.index, svc.settings.index_alias, gen)
        source_app_for(svc).load(tmp_path / "corpus.jsonl")
        local.drain()
        yield local, {"queries": str(tmp_path / "queries.jsonl"), "qrels": str(tmp_path / "qrels.tsv")}
    finally:
        local.stop()
        os.environ.clear()
        os.environ.update(saved)
        reset_services()


def test_the_estimate_agrees_with_the_rebuild_within_15_percent(
    stack: tuple[LocalStack, dict[str, Any]],
) -> None:
    local, golden = stack
    # WHEN a rebuild to smaller chunks runs, estimated first from a sample of 150 of the 400 items
    payload = {
        "model": "hash-256",
        "chunker": {"target_chars": 600, "max_chars": 1200, "min_chars": 200},
        "eval": golden,
        "estimate_sample": 150,
        "backfill_segments": 2,
        "page_size": 50,
        "pages_per_task": 4,
        "catchup_wait_s": 1,
        "catchup_max_checks": 60,
    }
    with local.background(interval_s=0.05):
        out = run_rebuild(local, payload, timeout_s=600)
    # THEN the estimate was a sample, not the table, and it is in the execution's output
    estimate = out["estimate"]
    assert estimate["items"] == DOCS and any("sampled items" in line for line in estimate["summary"])
    # AND chunks, texts and tokens embedded agree with what the rebuild did within 15%
    versus = out["evaluation"]["estimate"]
    assert versus["items scanned"]["actual"] == DOCS
    for figure in ("chunks", "texts embedded", "tokens embedded"):
        row = versus[figure]
        assert row["actual"] > 0 and abs(row["error"]) <= 0.15, (figure, row)
    # AND some chunk texts came from the cache (the old chunker cut them the same way)
    svc = local.services()
    report = svc.registry.get(out["generation_id"]).report or {}
    assert report["embeddings"]["reused"] > 0 and estimate["texts_reused"] > 0
    # AND the report renders the comparison
    assert "## Estimate vs actual" in render_markdown_report(report)
