"""Exact k-NN for servers without a k-NN query (osmem-server, local mode): an in-process cache
of each concrete index, kept in step with the server, scored by ``scoring``.

Fetching every vector per query over HTTP would take seconds, so each concrete index is cached
in-process as a float32 matrix plus the stored sources (minus the embedding). The cache is
validated on every search with one cheap ``_stats`` request whose counters move on ANY write
(index, rewrite, update, delete); on a change it is patched incrementally: one listing of
``(_id, _seq_no, _primary_term)`` without sources, then ``mget`` of only the new or changed ids.

The access filter is applied by ``filter_eval.FilterEvaluator`` as a pre-filter; scores follow
OpenSearch's conventions per space type and the generation's precision (``VectorSpec``), so
both modes rank and score alike. For hybrid retrieval the cache also keeps each index's terms
(the server's term vectors, fetched on the first lexical search, then patched like the vectors)
and scores BM25 itself (``lexical``).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import OpenSearchException

from dynembed.core.errors import DynembedError, ModelMismatchError
from dynembed.core.models import QuantizerState, VectorSpec
from dynembed.core.ports import SearchHit
from dynembed.index.errors import translate_error
from dynembed.index.filter_eval import FilterEvaluator, UnsupportedFilterError
from dynembed.index.filters import TEXT_FIELD
from dynembed.index.lexical import Bm25Index, RowTerms, encode_terms
from dynembed.index.mapping import EMBEDDING_FIELD, embedding_dimension, embedding_space
from dynembed.index.scoring import SUPPORTED_SPACES, Matrix, Scorer, prepare_vectors, top_rows

logger = logging.getLogger(__name__)

__all__ = ["CacheStats", "ExactKnnCache", "FilterEvaluator", "UnsupportedFilterError", "VectorTable"]

_FULL_PRECISION = VectorSpec()


UNKNOWN_MARKER = (-1, -1)


def marker_of(hit: Mapping[str, Any]) -> tuple[int, int]:
    """(_seq_no, _primary_term): every write to a doc gives it a new one."""
    return int(hit.get("_seq_no", -1)), int(hit.get("_primary_term", -1))


@dataclass
class VectorTable:
    """An immutable snapshot of one concrete index: vectors, sources, change markers."""

    index: str
    uuid: str
    space: str
    dimension: int
    ids: list[str]
    sources: list[dict[str, Any]]
    """Stored sources without the embedding."""
    markers: list[tuple[int, int]]
    """(_seq_no, _primary_term) per row: any write to a doc changes its marker."""
    vectors: Matrix
    """Prepared for scoring (unit rows for cosine)."""
    fingerprint: tuple[Any, ...] = ()
    sq_norms: npt.NDArray[np.float32] = field(init=False)
    evaluator: FilterEvaluator = field(init=False)
    _scorers: dict[tuple[VectorSpec, QuantizerState | None], Scorer] = field(init=False, repr=False)
    _scorer_lock: threading.Lock = field(init=False, repr=False)
    row_of: dict[str, int] = field(init=False)
    vocabulary: dict[str, int] | None = field(default=None, repr=False)
    terms: list[RowTerms] | None = field(default=None, repr=False)
    """Analysed text of each row (None until a lexical search needs it)."""
    _bm25: Bm25Index | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.sq_norms = np.einsum("ij,ij->i", self.vectors, self.vectors).astype(np.float32)
        self._scorers = {}
        self._scorer_lock = threading.Lock()
        self.evaluator = FilterEvaluator(self.ids, self.sources)
        self.row_of = {doc_id: row for row, doc_id in enumerate(self.ids)}

    @classmethod
    def from_hits(
        cls,
        index: str,
        uuid: str,
        space: str,
        dimension: int,
        hits: Iterable[Mapping[str, Any]],
        fingerprint: tuple[Any, ...] = (),
        reuse: VectorTable | None = None,
        reuse_ids: Sequence[str] = (),
    ) -> VectorTable:
        """Rows kept from ``reuse`` (by id, no copy of their work) followed by fresh search or
        mget hits, whose ``embedding`` is taken out of the source and prepared for scoring."""
        ids: list[str] = []
        markers: list[tuple[int, int]] = []
        sources: list[dict[str, Any]] = []
        kept = np.empty((0, dimension), dtype=np.float32)
        if reuse is not None and reuse_ids:
            rows = [reuse.row_of[doc_id] for doc_id in reuse_ids]
            ids.extend(reuse_ids)
            markers.extend(reuse.markers[r] for r in rows)
            sources.extend(reuse.sources[r] for r in rows)
            kept = reuse.vectors[np.asarray(rows, dtype=np.int64)]
        fresh: list[Sequence[float]] = []
        for hit in hits:
            source = dict(hit.get("_source") or {})
            vector = source.pop(EMBEDDING_FIELD, None)
            if vector is None:
                continue  # not searchable by vector in OpenSearch either
            if len(vector) != dimension:
                raise DynembedError(
                    f"index {index}: chunk {hit['_id']} has {len(vector)} dims, not {dimension}"
                )
            ids.append(str(hit["_id"]))
            markers.append(marker_of(hit))
            sources.append(source)
            fresh.append(vector)
        prepared = prepare_vectors(np.asarray(fresh, dtype=np.float32).reshape(len(fresh), dimension), space)
        vectors = np.concatenate([kept, prepared]) if len(kept) else prepared
        return cls(index, uuid, space, dimension, ids, sources, markers, vectors, fingerprint)

    def __len__(self) -> int:
        return len(self.ids)

    def scorer(self, spec: VectorSpec, state: QuantizerState | None) -> Scorer:
        """This snapshot scored under ``spec`` (built once per spec and trained state)."""
        key = (spec, state)
        scorer = self._scorers.get(key)
        if scorer is None:
            with self._scorer_lock:
                scorer = self._scorers.get(key)
                if scorer is None:
                    scorer = Scorer(self.vectors, self.sq_norms, self.space, spec, state)
                    self._scorers[key] = scorer
        return scorer

    def scored(
        self,
        vector: Sequence[float],
        k: int,
        filter_query: Mapping[str, Any] | None,
        spec: VectorSpec = _FULL_PRECISION,
        state: QuantizerState | None = None,
        *,
        copy_sources: bool = True,
    ) -> list[SearchHit]:
        """Top-k rows under the filter. ``copy_sources=False`` hands out the snapshot's own
        sources (read-only: fusion candidates, copied by whoever returns them)."""
        if len(vector) != self.dimension:
            raise ModelMismatchError(
                f"query vector has {len(vector)} dimensions; index {self.index} holds {self.dimension}"
            )
        mask = self.evaluator.mask(filter_query)
        if not len(self):
            return []
        query = np.asarray(vector, dtype=np.float32)
        return [
            SearchHit(id=self.ids[row], score=score, source=self._source(row, copy_sources))
            for row, score in self.scorer(spec, state).top(query, mask, k)
        ]

    def _source(self, row: int, copied: bool) -> dict[str, Any]:
        return copy.deepcopy(self.sources[row]) if copied else self.sources[row]

    def bm25(self) -> Bm25Index | None:
        if self._bm25 is None and self.terms is not None and self.vocabulary is not None:
            with self._scorer_lock:
                if self._bm25 is None:
                    self._bm25 = Bm25Index(self.vocabulary, self.terms)
        return self._bm25

    def lexical_scored(
        self,
        query_terms: Sequence[str],
        k: int,
        filter_query: Mapping[str, Any] | None,
        *,
        copy_sources: bool = True,
    ) -> list[SearchHit]:
        """BM25 top-k among rows that match a term and the filter (a ``match`` in ``bool.filter``)."""
        bm25 = self.bm25()
        if bm25 is None:
            raise DynembedError(f"index {self.index}: terms not loaded for a lexical search")
        scores = bm25.scores(query_terms)
        mask = self.evaluator.mask(filter_query) & (scores > 0)
        return [
            SearchHit(id=self.ids[row], score=float(scores[row]), source=self._source(row, copy_sources))
            for row in top_rows(scores, mask, k)
        ]


def _merged(hits: list[SearchHit], k: int) -> list[SearchHit]:
    """Hits of several concrete indices, best first (ties: lower id), the first k."""
    hits.sort(key=lambda h: (-h.score, h.id))
    return hits[:k]


# --------------------------------------------------------------------------------------------
# The cache that keeps VectorTables in step with the server
# --------------------------------------------------------------------------------------------


@dataclass
class CacheStats:
    """What the cache did, for tests and the benchmark."""

    validations: int = 0
    full_loads: int = 0
    incremental_loads: int = 0
    docs_fetched: int = 0
    term_vectors_fetched: int = 0
    last_reload_s: float = 0.0


class ExactKnnCache:
    """Per-index in-process snapshots for exact k-NN, validated on every search.

    Snapshots are immutable and swapped whole, so concurrent searches never see a half-patched
    table; reloads are serialised by one lock.
    """

    def __init__(
        self,
        client: OpenSearch,
        *,
        page_size: int = 1000,
        mget_batch: int = 500,
        full_reload_ratio: float = 0.5,
        max_indices: int = 4,
        load_slices: int = 2,
    ) -> None:
        self._client = client
        self._load_slices = load_slices
        self._page_size = page_size
        self._mget_batch = mget_batch
        self._full_reload_ratio = full_reload_ratio
        self._max_indices = max_indices
        self._tables: OrderedDict[str, VectorTable] = OrderedDict()
        self._reload_lock = threading.Lock()
        self._terms_lock = threading.Lock()
        self.stats = CacheStats()

    def search(
        self,
        index: str,
        vector: Sequence[float],
        k: int,
        filter_query: Mapping[str, Any] | None,
        *,
        vectors: VectorSpec = _FULL_PRECISION,
        quantizer: QuantizerState | None = None,
    ) -> list[SearchHit]:
        """Top-k under the filter, scored as an index of ``vectors`` precision would score."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        return _merged(
            [
                hit
                for table in self.tables(index)
                for hit in table.scored(vector, k, filter_query, vectors, quantizer)
            ],
            k,
        )

    def hybrid(
        self,
        index: str,
        vector: Sequence[float],
        text: str,
        depth: int,
        filter_query: Mapping[str, Any] | None,
        *,
        vectors: VectorSpec = _FULL_PRECISION,
        quantizer: QuantizerState | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        """The two sub-queries of a hybrid search, (lexical, vector), each its top ``depth``
        under the filter, from the same snapshot of the index. Their sources are the snapshot's
        own: copy the hits you return (``fuse`` keeps only k of 2 x depth)."""
        if depth <= 0:
            raise ValueError(f"depth must be positive, got {depth}")
        lexical: list[SearchHit] = []
        nearest: list[SearchHit] = []
        for table in self.tables(index):
            self._ensure_terms(table)
            terms = self._analyze(table.index, text)
            lexical.extend(table.lexical_scored(terms, depth, filter_query, copy_sources=False))
            nearest.extend(table.scored(vector, depth, filter_query, vectors, quantizer, copy_sources=False))
        return _merged(lexical, depth), _merged(nearest, depth)

    def _ensure_terms(self, table: VectorTable) -> None:
        if table.terms is not None:
            return
        with self._terms_lock:
            if table.terms is None:
                vocabulary: dict[str, int] = {}
                found = self._term_vectors(table.index, table.ids)
                table.terms = [encode_terms(found.get(doc_id, {}), vocabulary) for doc_id in table.ids]
                table.vocabulary = vocabulary

    def _term_vectors(self, concrete: str, ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each doc's analysed ``text`` terms with their frequencies, as the server indexed them."""
        found: dict[str, dict[str, int]] = {}
        params = {
            "fields": TEXT_FIELD,
            "positions": "false",
            "offsets": "false",
            "payloads": "false",
            "term_statistics": "false",
            "field_statistics": "false",
        }
        try:
            for start in range(0, len(ids), self._mget_batch):
                batch = list(ids[start : start + self._mget_batch])
                response = self._client.mtermvectors(index=concrete, body={"ids": batch}, params=params)
                for doc in response.get("docs", []):
                    terms = doc.get("term_vectors", {}).get(TEXT_FIELD, {}).get("terms", {})
                    found[str(doc["_id"])] = {t: int(v.get("term_freq", 1)) for t, v in terms.items()}
        except OpenSearchException as exc:
            raise translate_error(exc, f"term vectors of {concrete}") from exc
        self.stats.term_vectors_fetched += len(found)
        return found

    def _analyze(self, concrete: str, text: str) -> list[str]:
        """The query's terms through the index's own analyzer for ``text``."""
        try:
            response = self._client.indices.analyze(index=concrete, body={"field": TEXT_FIELD, "text": text})
        except OpenSearchException as exc:
            raise translate_error(exc, f"analyze a query for {concrete}") from exc
        return [str(token["token"]) for token in response.get("tokens", [])]

    def tables(self, index: str) -> list[VectorTable]:
        """Current snapshots of every concrete index behind ``index`` (a name or an alias)."""
        tables = []
        for concrete, fingerprint in sorted(self._fingerprints(index).items()):
            table = self._tables.get(concrete)
            if table is None or table.fingerprint != fingerprint:
                with self._reload_lock:
                    table = self._tables.get(concrete)
                    if table is None or table.fingerprint != fingerprint:
                        table = self._reload(concrete, fingerprint, table)
                        self._remember(concrete, table)
            tables.append(table)
        return tables

    def forget(self, index: str) -> None:
        with self._reload_lock:
            self._tables.pop(index, None)

    def _remember(self, concrete: str, table: VectorTable) -> None:
        self._tables[concrete] = table
        self._tables.move_to_end(concrete)
        while len(self._tables) > self._max_indices:
            self._tables.popitem(last=False)

    def _fingerprints(self, index: str) -> dict[str, tuple[Any, ...]]:
        """One ``_stats`` request (~1 ms): uuid (catches delete + recreate), doc count, and the
        indexing counters, which move on every index, update and delete operation."""
        self.stats.validations += 1
        try:
            response = self._client.indices.stats(index=index, metric="docs,indexing")
        except OpenSearchException as exc:
            raise translate_error(exc, f"exact k-NN on {index}") from exc
        result = {}
        for concrete, entry in response.get("indices", {}).items():
            primaries = entry.get("primaries", {})
            docs = primaries.get("docs", {})
            indexing = primaries.get("indexing", {})
            result[concrete] = (
                entry.get("uuid", ""),
                docs.get("count"),
                indexing.get("index_total"),
                indexing.get("delete_total"),
            )
        if not result:
            raise DynembedError(f"exact k-NN on {index}: no such index or alias")
        return result

    def _reload(
        self, concrete: str, fingerprint: tuple[Any, ...], previous: VectorTable | None
    ) -> VectorTable:
        started = time.perf_counter()
        uuid = str(fingerprint[0])
        try:
            # Writes counted by _stats may not be searchable yet on a real cluster; make them so,
            # or the cache would record this fingerprint without having seen them.
            self._client.indices.refresh(index=concrete)
            if previous is None or previous.uuid != uuid or not uuid:
                table = self._full_load(concrete, uuid, fingerprint)
            else:
                table = self._incremental_load(previous, fingerprint)
        except OpenSearchException as exc:
            raise translate_error(exc, f"exact k-NN reload of {concrete}") from exc
        self.stats.last_reload_s = time.perf_counter() - started
        logger.debug(
            "exact k-NN cache of %s: %d chunks in %.3f s", concrete, len(table), self.stats.last_reload_s
        )
        return table

    def _space_and_dimension(self, concrete: str) -> tuple[str, int]:
        mapping = self._client.indices.get_mapping(index=concrete).get(concrete, {})
        dimension = embedding_dimension(mapping)
        space = embedding_space(mapping) or "l2"  # OpenSearch's default space type
        if dimension is None:
            raise DynembedError(f"index {concrete} has no '{EMBEDDING_FIELD}' knn_vector field")
        if space not in SUPPORTED_SPACES:
            raise DynembedError(f"exact k-NN on {concrete}: unsupported space type {space!r}")
        return space, dimension

    def _full_load(self, concrete: str, uuid: str, fingerprint: tuple[Any, ...]) -> VectorTable:
        self.stats.full_loads += 1
        space, dimension = self._space_and_dimension(concrete)
        count = fingerprint[1] if isinstance(fingerprint[1], int) else 0
        slices = self._load_slices if count > self._page_size else 1
        hits: list[Mapping[str, Any]] = []
        if slices == 1:
            hits.extend(self._scan(concrete, {"seq_no_primary_term": True}))
        else:
            # Sliced scroll: JSON decoding of the vectors is the bottleneck; two slices let the
            # server encode one page while this process decodes another (~40% faster at 20k).
            queries = [
                {"seq_no_primary_term": True, "slice": {"id": i, "max": slices}} for i in range(slices)
            ]
            with ThreadPoolExecutor(max_workers=slices) as pool:
                for part in pool.map(lambda q: list(self._scan(concrete, q)), queries):
                    hits.extend(part)
        self.stats.docs_fetched += len(hits)
        return VectorTable.from_hits(concrete, uuid, space, dimension, hits, fingerprint)

    def _scan(self, concrete: str, query: dict[str, Any]) -> Iterable[Mapping[str, Any]]:
        return helpers.scan(self._client, index=concrete, query=query, size=self._page_size, scroll="2m")

    def _incremental_load(self, previous: VectorTable, fingerprint: tuple[Any, ...]) -> VectorTable:
        """List (_id, _seq_no, _primary_term) without sources (~0.1 s for 20k chunks on osmem),
        then fetch only the ids whose marker is new or different."""
        concrete = previous.index
        listing = {
            str(hit["_id"]): marker_of(hit)
            for hit in helpers.scan(
                self._client,
                index=concrete,
                query={"_source": False, "seq_no_primary_term": True},
                size=10_000,
                scroll="2m",
            )
        }
        if any(marker == UNKNOWN_MARKER for marker in listing.values()):
            return self._full_load(concrete, previous.uuid, fingerprint)  # server hides seq_no
        changed = [
            doc_id
            for doc_id, marker in listing.items()
            if (row := previous.row_of.get(doc_id)) is None or previous.markers[row] != marker
        ]
        if len(changed) > self._full_reload_ratio * max(len(listing), 1):
            return self._full_load(concrete, previous.uuid, fingerprint)
        self.stats.incremental_loads += 1
        fetched: list[Mapping[str, Any]] = []
        for start in range(0, len(changed), self._mget_batch):
            batch = changed[start : start + self._mget_batch]
            docs = self._client.mget(index=concrete, body={"ids": batch}).get("docs", [])
            fetched.extend(doc for doc in docs if doc.get("found"))
        self.stats.docs_fetched += len(fetched)
        changed_set = set(changed)
        unchanged = [doc_id for doc_id in listing if doc_id not in changed_set]
        table = VectorTable.from_hits(
            concrete,
            previous.uuid,
            previous.space,
            previous.dimension,
            fetched,
            fingerprint,
            reuse=previous,
            reuse_ids=unchanged,
        )
        if previous.terms is not None and previous.vocabulary is not None:
            # Terms of unchanged rows carry over; only the fetched docs' term vectors are read.
            fresh = self._term_vectors(concrete, [str(d["_id"]) for d in fetched])
            vocabulary = dict(previous.vocabulary)
            table.terms = [
                previous.terms[previous.row_of[doc_id]]
                if doc_id not in fresh
                else encode_terms(fresh[doc_id], vocabulary)
                for doc_id in table.ids
            ]
            table.vocabulary = vocabulary
        return table
