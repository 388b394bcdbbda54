"""`dynembed bench editstream`: replay a real edit stream through the real pipeline and say what
it cost, next to a naive baseline and LangChain's indexing API on the same events.

The pipeline is the one ``dynembed demo`` runs: the source table, its stream and the jobs queue
on a threaded moto server, the index on osmem-server, the real ``classify`` and ``sync``
handlers driven by the local pumps. The ``hash-256`` embedder is wrapped in a counter, so
"embedded characters" is what the embedder was really asked for. Batches follow the stream's
README: the snapshot as one batch, then one batch per commit (write every event of the
commit to the source table, then drain the pipeline).

Correctness is read back, not counted: at the end every chunk is read from the index and
compared with the final documents, read from the source table and chunked again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dynembed.core.errors import ConfigError, DynembedError
from dynembed.core.models import ChunkerSpec, Generation
from dynembed.core.schema import SourceSchema
from dynembed.core.telemetry import percentile
from dynembed.embedders.catalog import spec_for
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HASH_MODEL_NAME, HashingEmbedder
from dynembed.sync.chunking import chunker_for
from dynembed_ops.bench.baselines import Baseline, FinalDoc, LangChainBaseline, NaiveBaseline
from dynembed_ops.bench.checks import ExpectedChunk, IndexCheck, StoredChunk, check_index
from dynembed_ops.editstream import EditEvent, batches, read_events

BENCH_SCHEMA = SourceSchema(
    content_attributes=("title", "body"),
    access_attributes=("acl",),
    tenant_attribute="tenant",
)
BENCH_TENANT = "editstream"

ProgressHook = Callable[[str, int, int], None]
"""(phase, done, total): called after the snapshot and after every commit."""


@dataclass(frozen=True)
class BenchOptions:
    events: Path
    max_commits: int | None = None
    dump_chunks: Path | None = None


@dataclass
class Tally:
    """One system's costs over the replay (the pipeline or a baseline)."""

    snapshot_chars: int = 0
    edit_chars: int = 0
    edit_texts: int = 0
    modify_only_chars: int = 0
    freshness_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


@dataclass
class StreamFigures:
    """What the events themselves say, the same for every system."""

    commits: int = 0
    events: int = 0
    diff_chars: int = 0
    modify_only_commits: int = 0
    modify_only_diff_chars: int = 0


# ---- entry point ------------------------------------------------------------------------------


def run_editstream_bench(options: BenchOptions, progress: ProgressHook | None = None) -> dict[str, Any]:
    """Replay, measure, read back; the summary is the command's JSON."""
    if options.max_commits is not None and options.max_commits < 0:
        raise ConfigError("--max-commits must be 0 or more")
    events = read_events(options.events)
    if not events:
        raise ConfigError(f"{options.events}: no events")
    plan = list(batches(events, options.max_commits))
    if not plan or plan[0][0] != 0:
        raise ConfigError(f"{options.events}: the stream must start with its snapshot (commit_index 0)")
    baselines: list[Baseline] = [NaiveBaseline(_content_parts), LangChainBaseline()]
    if progress:  # the input is sound: only now is there progress to show
        progress("snapshot", 0, len(plan) - 1)
    started = time.monotonic()
    with _quiet_stdout(), _local_stack() as stack:
        run = PipelineRun(stack)
        stream = StreamFigures()
        tallies = {b.name: Tally() for b in baselines}
        known: set[str] = set()
        for done, (commit_index, group) in enumerate(plan):
            modify_only = commit_index > 0 and all(e.op == "upsert" and e.doc_id in known for e in group)
            run.apply(commit_index, group, modify_only)
            for baseline in baselines:
                _apply_baseline(baseline, tallies[baseline.name], commit_index, group, modify_only)
            if commit_index > 0:
                stream.commits += 1
                stream.events += len(group)
                stream.diff_chars += sum(e.diff_chars for e in group)
                if modify_only:
                    stream.modify_only_commits += 1
                    stream.modify_only_diff_chars += sum(e.diff_chars for e in group)
            for event in group:
                if event.op == "delete":
                    known.discard(event.doc_id)
                else:
                    known.add(event.doc_id)
            if progress:
                progress("snapshot" if commit_index == 0 else "commits", done, len(plan) - 1)
        if progress:
            progress("reading the index back", len(plan) - 1, len(plan) - 1)
        docs = run.final_docs()
        stored = run.stored_chunks()
        check = check_index(stored, run.expected(docs), versions=run.versions)
        summary = _figures(run.tally, stream, check, stored)
        summary["chunks"] = len(stored)
        summary["ledger_lagging_docs"] = run.ledger_lagging_docs()
        summary["dead_lettered"] = run.dead_lettered()
        summary["baselines"] = {}
        for baseline in baselines:
            kept = baseline.stored()
            summary["baselines"][baseline.name] = _figures(
                tallies[baseline.name],
                stream,
                check_index(kept, baseline.expected(docs), check_positions=baseline.check_positions),
                kept,
            )
        _add_ratios(summary)
        summary["timing"] = run.timing()
        if options.dump_chunks:
            dump_chunks(stored, options.dump_chunks)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    return summary


# ---- the pipeline ---------------------------------------------------------------------------------


class PipelineRun:
    """The real pipeline on a local stack, with a counting ``hash-256`` embedder in its services."""

    def __init__(self, stack: Any) -> None:
        from dynembed.rebuild.generations import bootstrap, new_generation
        from dynembed_ops.source_app import SourceApp

        self.stack = stack
        self.svc = stack.services()
        self.generation: Generation = bootstrap(
            self.svc.registry,
            self.svc.index,
            self.svc.settings.index_alias,
            new_generation(spec_for(HASH_MODEL_NAME), ChunkerSpec(), self.svc.settings.index_prefix),
        )
        self.counter = CountingEmbedder(HashingEmbedder())
        if self.counter.spec.model_id != self.generation.model.model_id:
            raise ConfigError("the counting embedder does not match the generation's model")
        # The handlers run in this process and share these services: the counter sees every embedding.
        self.svc._embedders[self.generation.model.model_id] = self.counter
        self.table = _source_table(stack)
        self.app = SourceApp(self.table, self.svc.schema)
        self.tally = Tally()
        self.versions: dict[str, int] = {}
        """doc → its current source version; versions keep rising across a delete."""
        self._last_version: dict[str, int] = {}
        self.write_s = 0.0
        self.drain_s = 0.0
        self.readback_s = 0.0

    def apply(self, commit_index: int, group: Sequence[EditEvent], modify_only: bool) -> None:
        chars_before = self.counter.document_chars
        texts_before = self.counter.document_texts
        freshness_before = len(self.svc.telemetry.freshness_s)
        t0 = time.monotonic()
        for event in group:
            try:
                self._write(event)
            except ClientError as exc:
                raise DynembedError(
                    f"seq {event.seq}, doc {event.doc_id!r}: the source table refused the write: {exc}"
                ) from exc
        t1 = time.monotonic()
        self.stack.drain()
        t2 = time.monotonic()
        self.write_s += t1 - t0
        self.drain_s += t2 - t1
        self.tally.wall_s += t2 - t0
        chars = self.counter.document_chars - chars_before
        if commit_index == 0:
            self.tally.snapshot_chars += chars
            return
        self.tally.edit_chars += chars
        self.tally.edit_texts += self.counter.document_texts - texts_before
        if modify_only:
            self.tally.modify_only_chars += chars
        self.tally.freshness_s.extend(self.svc.telemetry.freshness_s[freshness_before:])

    def _write(self, event: EditEvent) -> None:
        if event.op == "delete":
            self.app.delete(event.doc_id)
            self.versions.pop(event.doc_id, None)
            return
        version = self._last_version.get(event.doc_id, 0) + 1
        self._last_version[event.doc_id] = self.versions[event.doc_id] = version
        self.app.put(
            {
                "doc_id": event.doc_id,
                "title": event.title,
                "body": event.body,
                "acl": ["public"],
                "tenant": BENCH_TENANT,
            },
            version=version,
        )

    def dead_lettered(self) -> int:
        """Jobs and stream records the pipeline gave up on (their chunks would be missing)."""
        info = self.stack.info
        sqs = self.stack.client("sqs")
        total = 0
        for url in (info.jobs_dlq_url, info.stream_failures_queue_url):
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            total += int(attrs["Attributes"]["ApproximateNumberOfMessages"])
        return total

    def final_docs(self) -> dict[str, FinalDoc]:
        """The source table as it ends (a full consistent scan), not the replay's memory of it."""
        docs = {}
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            page = self.table.scan(**kwargs)
            for item in page.get("Items", []):
                doc_id = str(item["doc_id"])
                docs[doc_id] = FinalDoc(doc_id, str(item.get("title") or ""), str(item.get("body") or ""))
                self.versions[doc_id] = int(item["version"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        for gone in set(self.versions) - set(docs):
            del self.versions[gone]
        return docs

    def expected(self, docs: Mapping[str, FinalDoc]) -> list[ExpectedChunk]:
        chunker = chunker_for(self.generation.chunker)
        return [
            ExpectedChunk(doc.doc_id, chunk.index, chunk.passage)
            for doc in docs.values()
            for chunk in chunker.chunk(_content_parts(doc.title, doc.body))
        ]

    def stored_chunks(self) -> list[StoredChunk]:
        """Every chunk the alias's index holds, read back through the index adapter."""
        t0 = time.monotonic()
        index = self.svc.index
        target = index.alias_target(self.svc.settings.index_alias) or self.generation.index_name
        index.refresh(target)
        chunks = [
            StoredChunk(
                doc_id=str(source["doc_id"]),
                text=str(source["text"]),
                chunk_index=int(source["chunk_index"]),
                source_version=int(source["source_version"]),
            )
            for _, source in index.iter_chunks(target, ["doc_id", "chunk_index", "text", "source_version"])
        ]
        self.readback_s += time.monotonic() - t0
        return chunks

    def ledger_lagging_docs(self) -> int:
        """Docs whose ledger entry is not committed at the source's current version."""
        lagging = 0
        for doc_id, version in self.versions.items():
            entry = self.svc.ledger.get(doc_id, self.generation.id)
            if entry is None or entry.state != "committed" or entry.source_version != version:
                lagging += 1
        return lagging

    def timing(self) -> dict[str, float]:
        return {
            "pipeline_s": round(self.tally.wall_s, 1),
            "pipeline_source_writes_s": round(self.write_s, 1),
            "pipeline_drain_s": round(self.drain_s, 1),
            "pipeline_readback_s": round(self.readback_s, 1),
        }


# ---- helpers --------------------------------------------------------------------------------------


def _content_parts(title: str, body: str) -> list[tuple[str, str]]:
    return BENCH_SCHEMA.content_of({"title": title, "body": body})


def _apply_baseline(
    baseline: Baseline, tally: Tally, commit_index: int, group: Sequence[EditEvent], modify_only: bool
) -> None:
    before = baseline.counter.document_chars
    texts_before = baseline.counter.document_texts
    t0 = time.monotonic()
    lags = baseline.apply(group)
    tally.wall_s += time.monotonic() - t0
    chars = baseline.counter.document_chars - before
    if commit_index == 0:
        tally.snapshot_chars += chars
        return
    tally.edit_chars += chars
    tally.edit_texts += baseline.counter.document_texts - texts_before
    tally.freshness_s.extend(lags)
    if modify_only:
        tally.modify_only_chars += chars


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _figures(
    tally: Tally, stream: StreamFigures, check: IndexCheck, stored: list[StoredChunk]
) -> dict[str, Any]:
    return {
        "commits": stream.commits,
        "events": stream.events,
        "embedded_texts": tally.edit_texts,
        "embedded_chars": tally.edit_chars,
        "snapshot_embedded_chars": tally.snapshot_chars,
        "diff_chars": stream.diff_chars,
        "ratio_all": _ratio(tally.edit_chars, stream.diff_chars),
        "ratio_modify_only": _ratio(tally.modify_only_chars, stream.modify_only_diff_chars),
        "mean_chunk_chars": round(sum(len(c.text) for c in stored) / len(stored), 1) if stored else None,
        "stale": check.stale,
        "missing": check.missing,
        "duplicates": check.duplicates,
        "freshness_p50_s": _seconds(percentile(tally.freshness_s, 50)),
        "freshness_p95_s": _seconds(percentile(tally.freshness_s, 95)),
        "wall_s": round(tally.wall_s, 1),
        "check": {
            "stale_text": check.stale_text,
            "stale_position": check.stale_position,
            "stale_version": check.stale_version,
            "orphaned": check.orphaned,
        },
        "modify_only": {
            "commits": stream.modify_only_commits,
            "diff_chars": stream.modify_only_diff_chars,
            "embedded_chars": tally.modify_only_chars,
        },
    }


def _add_ratios(summary: dict[str, Any]) -> None:
    """The pipeline's edit-phase characters as a share of each baseline's."""
    for name, figures in summary["baselines"].items():
        summary[f"embedded_chars_vs_{name}"] = _ratio(summary["embedded_chars"], figures["embedded_chars"])


def dump_chunks(stored: Sequence[StoredChunk], path: Path) -> None:
    """``{doc_id, chunk_index, text}`` per line, by doc then position, as read from the index."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(stored, key=lambda c: (c.doc_id, c.chunk_index or 0, c.text))
    with path.open("w", encoding="utf-8") as out:
        for chunk in ordered:
            out.write(
                json.dumps({"doc_id": chunk.doc_id, "chunk_index": chunk.chunk_index, "text": chunk.text})
                + "\n"
            )


def _source_table(stack: Any) -> Any:
    import boto3

    assert stack.info is not None, "the local stack is not started"
    return boto3.resource("dynamodb", endpoint_url=stack.info.aws_url, region_name=stack.info.region).Table(
        stack.services().settings.source_table
    )


@contextlib.contextmanager
def _local_stack() -> Iterator[Any]:
    from dynembed_ops.local.stack import LocalStack

    with LocalStack(schema=BENCH_SCHEMA) as stack:
        yield stack


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Stdout carries the JSON alone: handler logs (Powertools writes to stdout) go to stderr."""
    from dynembed.core.observability import logger  # built now, so its handler can be moved

    moved = []
    for handler in [*logger.handlers, *logging.getLogger().handlers]:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            if stream is not None:
                handler.setStream(stream)
