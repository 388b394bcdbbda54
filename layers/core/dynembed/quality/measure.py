"""What the rebuild's Evaluate step and the canary both measure on a generation, so the two
figures are comparable: the golden set run (searched by explicit generation id, as the same
principal, with the same number of chunks per query) and the probes that metrics alone miss.

Probes: deleted docs are absent (no indexed doc is missing from the source, including every
doc some ledger saw deleted); the newest edits are retrievable (the most recently updated docs
are found by their own text, at their current version); a principal with no groups sees public
chunks only; coverage (every live doc with content is indexed). The sentinel's item is never
part of any of them.

Query vectors: the first ``LATENCY_QUERIES`` judged queries are embedded alone and searched,
timed, as a live search runs (the latency figures); the rest of the golden set is embedded in
one batched call, and every vector is kept (``QueryMemos``) for the probes and the calibration
that search the same queries on the same model again.

On a live system (the canary) a change can be on its way while a probe looks: ``settle_s``
leaves changes younger than that alone, and a stray is counted only if it is still there
``settle_s`` after the first look. The rebuild gate passes 0: its candidate has caught up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dynembed.core.models import Generation, GenerationStatus, ModelSpec, chunk_id, is_sentinel
from dynembed.core.ports import Embedder
from dynembed.core.source_scan import LiveDoc, live_documents
from dynembed.embedders.memo import QueryMemos
from dynembed.quality.evaluation import EvaluationResult, GoldenSet, evaluate_run, run_golden_set

if TYPE_CHECKING:
    from dynembed.wiring import Services

NEWEST_EDITS_PROBED = 5
RESTRICTED_QUERIES_PROBED = 5
NO_GROUPS_PRINCIPAL = "dynembed-probe-no-groups"
PROBES = (
    "deleted_docs_absent",
    "newest_edits_retrievable",
    "restricted_principal_public_only",
    "coverage_complete",
)
LATENCY_QUERIES = 50
"""Judged queries timed as live searches (each embedded alone): enough for a p95, while a local
model embeds the rest of a golden set several times faster in one batch than one by one."""


def chunks_for(k: int) -> int:
    """Chunk hits collapse to docs: ask for enough of them to rank k docs."""
    return min(1000, k * 3)


@dataclass(frozen=True)
class Measurement:
    result: EvaluationResult
    latencies_ms: list[float]
    hits: dict[str, list[tuple[str, float]]]
    """Per judged query, its chunk hits (doc id, score) best first: thresholds calibrate on them."""


def measure(
    svc: Services,
    generation: Generation,
    golden: GoldenSet,
    principal: Sequence[str],
    k: int,
    queries: QueryMemos | None = None,
) -> Measurement:
    """Every judged query of ``golden`` against ``generation``'s own index, scored at ``k``, after
    one untimed query (a cold cache must not land in the latency figures). ``queries`` keeps the
    query vectors for whoever searches the same queries next."""
    queries = queries or QueryMemos(svc.embedder_for)
    search = ScoredSearch(svc, generation, principal, chunks_for(k), queries)
    search.warm(golden)
    judged = golden.judged_query_ids
    run, latencies = run_golden_set(golden, search.live, judged[:LATENCY_QUERIES])
    # Embedded in one call and searched untimed: their search time is not a live search's.
    queries.embedder_for(generation.model).prime([golden.queries[q] for q in judged[LATENCY_QUERIES:]])
    rest, _ = run_golden_set(golden, search, judged[LATENCY_QUERIES:])
    return Measurement(evaluate_run({**run, **rest}, golden, k=k), latencies, search.runs(golden))


class ScoredSearch:
    """A golden-set search over one generation that also keeps each query's hits with their
    scores, in the order the queries ran; query vectors come from (and stay in) ``queries``."""

    def __init__(
        self, svc: Services, gen: Generation, principal: Sequence[str], k: int, queries: QueryMemos
    ) -> None:
        self.svc, self.gen, self.principal, self.k = svc, gen, list(principal), k
        self.queries = queries
        self.calls: list[list[tuple[str, float]]] = []

    def __call__(self, text: str) -> list[str]:
        """The query's vector from ``queries`` (embedded there if it is not yet)."""
        return self._search(text, self.queries.embedder_for)

    def live(self, text: str) -> list[str]:
        """As a live search: the query embedded alone (and its vector kept in ``queries``)."""
        return self._search(text, self.queries.live_embedder_for)

    def _search(self, text: str, embedder_for: Callable[[ModelSpec], Embedder]) -> list[str]:
        # dynembed's own measurement over the whole golden set: across tenants, even where
        # callers must name theirs (the access filter still applies).
        response = self.svc.search(
            text,
            self.principal,
            k=self.k,
            generation=self.gen.id,
            embedder_for=embedder_for,
            tenant_isolation=False,
        )
        self.calls.append([(r.doc_id, r.score) for r in response.results])
        return [r.doc_id for r in response.results]

    def warm(self, golden: GoldenSet) -> None:
        """One untimed query first, so no generation's latency counts loading its caches. Its
        vector is not kept: the timed run embeds that query again, as a live search would."""
        self.svc.search(
            golden.queries[golden.judged_query_ids[0]],
            self.principal,
            k=self.k,
            generation=self.gen.id,
            tenant_isolation=False,
        )

    def runs(self, golden: GoldenSet) -> dict[str, list[tuple[str, float]]]:
        """Per judged query (``run_golden_set`` runs them in this order)."""
        return dict(zip(golden.judged_query_ids, self.calls, strict=True))


@dataclass
class IndexSnapshot:
    """The live source docs and the docs ``generation``'s index holds, sentinel left out."""

    live: dict[str, LiveDoc]
    indexed: set[str]
    chunks: int = 0
    """Chunks in the index (the sentinel's left out), for sizing."""
    malformed: list[str] = field(default_factory=list)
    """Reasons of the malformed source items (not live: none of their chunks may be served)."""
    taken_at: float = field(default_factory=time.time)

    @property
    def wanted(self) -> set[str]:
        """Live docs with content: what the index should hold."""
        return {d for d, (_v, _u, has_content) in self.live.items() if has_content}


def snapshot(svc: Services, generation: Generation) -> IndexSnapshot:
    svc.index.refresh(generation.index_name)
    scan = live_documents(svc.schema, svc.source)
    live = {d: doc for d, doc in scan.docs.items() if not is_sentinel(d)}
    chunk_docs = _chunk_docs(svc, generation)
    return IndexSnapshot(live, set(chunk_docs), len(chunk_docs), scan.malformed)


def _chunk_docs(svc: Services, generation: Generation) -> list[str]:
    """The doc id of every chunk in the index."""
    docs = (
        str(fields.get("doc_id")) for _, fields in svc.index.iter_chunks(generation.index_name, ["doc_id"])
    )
    return [d for d in docs if not is_sentinel(d)]


def run_probes(
    svc: Services,
    generation: Generation,
    golden: GoldenSet,
    seen: IndexSnapshot,
    k: int,
    *,
    failed_docs: set[str] | frozenset[str] = frozenset(),
    settle_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    queries: QueryMemos | None = None,
) -> tuple[dict[str, bool], dict[str, Any]]:
    """Each probe's verdict, and the figures behind it (for the report). ``queries``: the
    golden-set run's query vectors, reused by the probes that search golden queries."""
    queries = queries or QueryMemos(svc.embedder_for)
    details: dict[str, Any] = {}
    probes: dict[str, bool] = {}
    settled = (lambda updated: updated is None or updated <= clock() - settle_s) if settle_s > 0 else None

    ledgers = _ledger_facts(svc, generation)
    deleted = ledgers.deleted - seen.live.keys()
    strays = sorted(seen.indexed - seen.live.keys())
    if strays and settle_s > 0:
        strays = _still_stray(svc, generation, strays, seen.taken_at + settle_s, sleep, clock)
    probes["deleted_docs_absent"] = not strays
    details["deleted_docs_absent"] = {"deleted_docs_checked": len(deleted), "indexed_but_gone": strays[:10]}

    found, probed, newest = _newest_edits(svc, generation, seen.live, k, settled, ledgers.changed_at)
    probes["newest_edits_retrievable"] = found == probed
    details["newest_edits_retrievable"] = newest

    leaks = _restricted_leaks(svc, generation, golden, k, queries)
    probes["restricted_principal_public_only"] = not leaks
    details["restricted_principal_public_only"] = {
        "principal": NO_GROUPS_PRINCIPAL,
        "non_public_hits": leaks[:10],
    }

    missing = sorted(
        d
        for d in seen.wanted - failed_docs - seen.indexed
        if settled is None or settled(seen.live[d].updated_at)
    )
    probes["coverage_complete"] = not missing
    details["coverage_complete"] = {"missing": missing[:10], "missing_count": len(missing)}
    return probes, details


def _still_stray(
    svc: Services,
    generation: Generation,
    strays: list[str],
    look_again_at: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[str]:
    """Strays still indexed and still absent from the source once in-flight deletes had time."""
    wait = look_again_at - clock()
    if wait > 0:
        sleep(wait)
    svc.index.refresh(generation.index_name)
    back = set(svc.source.get_items(strays))
    indexed = set(_chunk_docs(svc, generation))
    return [d for d in strays if d in indexed and d not in back]


@dataclass
class LedgerFacts:
    """What the probes read from the ledgers of this generation and the active one, in one scan
    of each (a ledger holds an entry per doc: scanning it twice doubled the probes' cost)."""

    deleted: set[str] = field(default_factory=set)
    """Docs some ledger holds as deleted."""
    changed_at: dict[str, float] = field(default_factory=dict)
    """doc -> the latest source change time a ledger recorded."""


def _ledger_facts(svc: Services, generation: Generation) -> LedgerFacts:
    facts = LedgerFacts()
    for gen in svc.registry.list():
        if gen.id != generation.id and gen.status is not GenerationStatus.ACTIVE:
            continue
        for entry in svc.ledger.scan(gen.id):
            if is_sentinel(entry.doc_id):
                continue
            if entry.state == "deleted":
                facts.deleted.add(entry.doc_id)
            if entry.source_updated_at is not None:
                facts.changed_at[entry.doc_id] = max(
                    facts.changed_at.get(entry.doc_id, 0.0), entry.source_updated_at
                )
    return facts


def _newest_edits(
    svc: Services,
    generation: Generation,
    live: dict[str, LiveDoc],
    k: int,
    settled: Callable[[float | None], bool] | None,
    changed_at: dict[str, float],
) -> tuple[int, int, dict[str, Any]]:
    """Search for the most recently edited docs by their own text, as their own readers. The
    edit time is the item's ``updated_at``, else the change time the ledger recorded (the stream
    record's). Docs nobody may read (an empty ACL) and items that turned malformed are skipped
    and listed: there is no principal to search as."""
    schema = svc.schema
    newest = sorted(
        (
            (when, doc_id)
            for doc_id, (_v, updated, has_content) in live.items()
            if has_content
            and (when := updated or changed_at.get(doc_id))
            and (settled is None or settled(when))
        ),
        reverse=True,
    )
    found = probed = 0
    nobody: list[str] = []
    malformed: list[str] = []
    for _, doc_id in newest:
        if probed == NEWEST_EDITS_PROBED:
            break
        item = svc.source.get_item(doc_id)
        state = schema.state_of(item, doc_id)
        if state.kind == "malformed":
            malformed.append(doc_id)
            continue
        if state.kind != "live" or item is None:
            continue  # deleted since the scan
        acl = schema.acl_of(item)
        if not acl:
            nobody.append(doc_id)
            continue
        text = " ".join(t for _, t in schema.content_of(item))[:500]
        probed += 1
        response = svc.search(  # as its readers search: their principals, its tenant
            text,
            acl,
            k=k,
            generation=generation.id,
            public_principal=schema.public_principal,
            tenant=schema.tenant_of(item),
        )
        if any(r.doc_id == doc_id and r.source_version == state.version for r in response.results):
            found += 1
    detail: dict[str, Any] = {"probed": probed, "found": found}
    if nobody:
        detail["skipped_nobody_may_read"] = nobody[:10]
    if malformed:
        detail["skipped_malformed"] = malformed[:10]
    if not probed:
        detail["note"] = "no recently edited doc has a reader: nothing probed"
    return found, probed, detail


def _restricted_leaks(
    svc: Services, generation: Generation, golden: GoldenSet, k: int, queries: QueryMemos
) -> list[str]:
    public = svc.schema.public_principal
    leaks: list[str] = []
    for query_id in golden.judged_query_ids[:RESTRICTED_QUERIES_PROBED]:
        response = svc.search(
            golden.queries[query_id],
            NO_GROUPS_PRINCIPAL,
            k=k,
            generation=generation.id,
            public_principal=public,
            tenant_isolation=False,
            embedder_for=queries.embedder_for,
        )
        ids = [chunk_id(r.doc_id, r.chunk_key) for r in response.results]
        stored = svc.index.get_chunks(generation.index_name, ids) if ids else {}
        leaks += [cid for cid in ids if public not in (stored.get(cid, {}).get("acl") or [])]
    return leaks
