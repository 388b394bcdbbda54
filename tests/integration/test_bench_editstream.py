"""`dynembed bench editstream` on the first commits of the shipped edit stream and on a small
stream with deletes: the JSON it promises, an index read back equal to the final documents
chunked again (checked here against a replay of the events, independent of the source table),
fewer embedded characters than re-embedding every changed doc, and one clear line for bad input.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dynembed.core.models import ChunkerSpec
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths
from dynembed_ops.bench.checks import ExpectedChunk, StoredChunk, check_index
from dynembed_ops.bench.editstream_bench import BENCH_SCHEMA, BenchOptions, run_editstream_bench
from dynembed_ops.editstream import batches, read_events

COMMITS = 15
FIGURES = {
    "commits",
    "events",
    "embedded_texts",
    "embedded_chars",
    "snapshot_embedded_chars",
    "diff_chars",
    "ratio_all",
    "ratio_modify_only",
    "mean_chunk_chars",
    "stale",
    "missing",
    "duplicates",
    "freshness_p50_s",
    "freshness_p95_s",
    "wall_s",
}


@dataclass(frozen=True)
class BenchRun:
    summary: dict[str, Any]
    dump: list[dict[str, Any]]
    events: Path
    max_commits: int | None


def _reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()  # backends are process-wide: another stack may have left tables


def _run(events: Path, max_commits: int | None, dump: Path) -> BenchRun:
    _reset_moto()
    try:
        # The bench's stack puts the environment back when it stops.
        summary = run_editstream_bench(BenchOptions(events, max_commits=max_commits, dump_chunks=dump))
    finally:
        _reset_moto()
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    return BenchRun(summary, rows, events, max_commits)


def _final_docs(events: Path, max_commits: int | None) -> dict[str, tuple[str, str]]:
    """The oracle: the documents as the events leave them (not read from any table)."""
    docs: dict[str, tuple[str, str]] = {}
    for _, group in batches(read_events(events), max_commits):
        for event in group:
            if event.op == "delete":
                docs.pop(event.doc_id, None)
            else:
                docs[event.doc_id] = (event.title, event.body)
    return docs


def _expected_rows(run: BenchRun) -> list[tuple[str, int, str]]:
    chunker = chunker_for(ChunkerSpec())
    return [
        (doc_id, chunk.index, chunk.passage)
        for doc_id, (title, body) in _final_docs(run.events, run.max_commits).items()
        for chunk in chunker.chunk(BENCH_SCHEMA.content_of({"title": title, "body": body}))
    ]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchRun]:
    folder = tmp_path_factory.mktemp("bench-shipped")
    yield _run(paths.EDITSTREAM, COMMITS, folder / "chunks.jsonl")


@pytest.fixture(scope="module")
def with_deletes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchRun]:
    """Snapshot of three docs; an edit; a delete; the deleted doc re-created; a doc added and
    deleted in one commit."""
    folder = tmp_path_factory.mktemp("bench-deletes")
    para = "\n\n".join(f"Paragraph {n}: " + "words that fill the page " * 12 for n in range(6))
    rows = [
        (0, "snapshot", "a.md", "upsert", "# A\n\n" + para),
        (0, "snapshot", "b.md", "upsert", "# B\n\n" + para.replace("words", "other words")),
        (0, "snapshot", "c.md", "upsert", "# C\n\nshort"),
        (1, "edit", "a.md", "upsert", "# A\n\n" + para.replace("Paragraph 3", "Section three")),
        (2, "edit", "b.md", "delete", ""),
        (3, "edit", "b.md", "upsert", "# B again\n\n" + para[:400]),
        (4, "edit", "d.md", "upsert", "# D\n\nbriefly here"),
        (4, "edit", "d.md", "delete", ""),
        (4, "edit", "c.md", "delete", ""),
    ]
    path = folder / "stream.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for seq, (commit_index, phase, doc_id, op, body) in enumerate(rows):
            event = {"seq": seq, "phase": phase, "commit": f"c{commit_index}", "commit_index": commit_index}
            event |= {
                "doc_id": doc_id,
                "op": op,
                "title": doc_id.upper(),
                "diff_chars": 0 if op == "delete" else 40,
            }
            if op == "upsert":
                event["body"] = body
            out.write(json.dumps(event) + "\n")
    yield _run(path, None, folder / "chunks.jsonl")


# ---- the shipped stream -----------------------------------------------------------------------------


@pytest.mark.integration
def test_summary_has_every_figure_for_the_pipeline_and_both_baselines(shipped: BenchRun) -> None:
    # GIVEN the first commits of the shipped stream replayed through the real pipeline
    summary = shipped.summary
    # THEN every figure is there, for the pipeline and for each baseline, over the same events
    assert summary.keys() >= FIGURES
    assert set(summary["baselines"]) == {"naive", "langchain"}
    for figures in summary["baselines"].values():
        assert figures.keys() >= FIGURES
        assert (figures["commits"], figures["events"]) == (summary["commits"], summary["events"])
    assert summary["commits"] == COMMITS
    assert summary["events"] == sum(len(g) for i, g in batches(read_events(paths.EDITSTREAM), COMMITS) if i)


@pytest.mark.integration
def test_index_read_back_has_no_stale_text_no_missing_and_no_duplicate_chunks(shipped: BenchRun) -> None:
    summary = shipped.summary
    # THEN the index holds every chunk of the final docs once, and nothing else
    assert summary["missing"] == 0
    assert summary["duplicates"] == 0
    assert summary["check"]["stale_text"] == 0
    assert summary["check"]["stale_version"] == 0
    assert summary["ledger_lagging_docs"] == 0
    assert summary["dead_lettered"] == 0
    assert summary["mean_chunk_chars"] >= 600


@pytest.mark.integration
def test_index_read_back_has_no_stale_chunk_at_all(shipped: BenchRun) -> None:
    # THEN not even a chunk's position is out of date
    assert shipped.summary["stale"] == 0


@pytest.mark.integration
def test_pipeline_embeds_fewer_characters_than_re_embedding_changed_docs(shipped: BenchRun) -> None:
    summary, naive = shipped.summary, shipped.summary["baselines"]["naive"]
    # THEN the ledger saves most of what a naive pipeline would embed again
    assert 0 < summary["embedded_chars"] < naive["embedded_chars"]
    # AND both start from the same snapshot with the same chunker
    assert summary["snapshot_embedded_chars"] == naive["snapshot_embedded_chars"]
    assert naive["stale"] == naive["missing"] == naive["duplicates"] == 0


@pytest.mark.integration
def test_dumped_chunks_are_the_final_docs_chunked_again(shipped: BenchRun) -> None:
    # GIVEN the final documents as the events leave them, chunked by the generation's chunker
    expected = _expected_rows(shipped)
    # THEN the dump, read back from the index, has exactly those texts per doc
    assert Counter((r["doc_id"], r["text"]) for r in shipped.dump) == Counter((d, t) for d, _, t in expected)
    assert {tuple(sorted(r)) for r in shipped.dump} == {("chunk_index", "doc_id", "text")}


# ---- deletes ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_deleted_and_recreated_docs_end_exactly_as_the_stream_leaves_them(with_deletes: BenchRun) -> None:
    summary = with_deletes.summary
    # THEN deleted docs are gone, the re-created one holds its new text only
    assert {r["doc_id"] for r in with_deletes.dump} == {"a.md", "b.md"}
    assert Counter((r["doc_id"], r["text"]) for r in with_deletes.dump) == Counter(
        (d, t) for d, _, t in _expected_rows(with_deletes)
    )
    assert summary["stale"] == summary["missing"] == summary["duplicates"] == 0
    assert summary["check"]["orphaned"] == 0
    for name, figures in summary["baselines"].items():
        assert (figures["stale"], figures["missing"], figures["duplicates"]) == (0, 0, 0), name


# ---- the check itself --------------------------------------------------------------------------------


@pytest.mark.unit
def test_check_counts_stale_missing_duplicate_misplaced_and_orphaned_chunks() -> None:
    # GIVEN a doc with texts x, y, x (a repeated text) at version 3, and a store that got it wrong
    expected = [ExpectedChunk("d", 0, "x"), ExpectedChunk("d", 1, "y"), ExpectedChunk("d", 2, "x")]
    stored = [
        StoredChunk("d", "x", 0, 3),
        StoredChunk("d", "x", 1, 3),  # second copy of x, at y's position
        StoredChunk("d", "y", 1, 4),  # written from a version the source never had
        StoredChunk("d", "y", 1, 3),  # one copy too many
        StoredChunk("d", "old", 3, 2),  # text the doc no longer has
        StoredChunk("gone", "z", 0, 1),  # doc deleted from the source
    ]
    # WHEN the store is checked against the doc
    check = check_index(stored, expected, versions={"d": 3})
    # THEN each kind of error is counted where it belongs
    assert (check.stale_text, check.orphaned) == (2, 1)
    assert check.stale_position == 1
    assert check.stale_version == 1
    assert (check.missing, check.duplicates) == (0, 1)
    assert check.stale == 4 and not check.exact
    # AND an exact store passes, and a lost chunk is missing
    exact = [StoredChunk(c.doc_id, c.text, c.chunk_index, 3) for c in expected]
    assert check_index(exact, expected, versions={"d": 3}).exact
    assert check_index(exact[:2], expected).missing == 1


# ---- bad input ---------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ('{"seq": 0, "phase": "snapshot"\n', "not valid JSON"),
        ('{"seq": 0, "phase": "snapshot", "commit_index": 0, "doc_id": "a", "op": "rename"}\n', "op must be"),
        ("\n", "no events"),
    ],
)
def test_bad_stream_is_one_clear_line_and_exit_1(tmp_path: Path, content: str | None, message: str) -> None:
    import dynembed_ops.cli.bench  # noqa: F401  (registers the command, as `dynembed` does at start)
    from dynembed_ops.cli.main import app

    path = tmp_path / "stream.jsonl"
    if content is not None:
        path.write_text(content)
    # WHEN the bench is pointed at it
    result = CliRunner().invoke(app, ["bench", "editstream", "--events", str(path)], env={"COLUMNS": "500"})
    # THEN it exits 1 with one line naming the problem, before starting anything
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


@pytest.mark.integration
def test_every_dumped_chunk_is_text_of_its_final_document(shipped: BenchRun) -> None:
    # THEN what the index stores is the document's own text (the title is only embedded with it),
    # so the dump can be checked against the final documents directly
    final = _final_docs(shipped.events, shipped.max_commits)
    assert shipped.dump
    for row in shipped.dump:
        assert row["text"] in final[row["doc_id"]][1], (row["doc_id"], row["chunk_index"])
