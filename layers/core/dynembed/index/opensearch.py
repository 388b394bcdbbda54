"""The ChunkIndex port on OpenSearch (Amazon OpenSearch Service in production, osmem-server
locally): index lifecycle, versioned bulk writes, reads, k-NN search and atomic alias swaps."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import urlparse

from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, Urllib3HttpConnection, helpers
from opensearchpy.exceptions import NotFoundError, OpenSearchException, RequestError

from dynembed.core.config import KnnMode
from dynembed.core.errors import ConfigError, DynembedError, IndexWriteError, VersionConflictError
from dynembed.core.models import ChunkDocument, Generation
from dynembed.core.ports import ChunkIndex, IndexSearch, SearchHit, WriteReport
from dynembed.index.errors import BulkThrottledError, BulkWriteError, ItemFailure, translate_error
from dynembed.index.exact import ExactKnnCache
from dynembed.index.filters import hybrid_query, knn_query
from dynembed.index.fusion import fuse_for
from dynembed.index.mapping import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_EF_SEARCH,
    DEFAULT_M,
    EMBEDDING_FIELD,
    ENGINES,
    Engine,
    embedding_dimension,
    embedding_space,
    index_body,
    search_pipeline_body,
    search_pipeline_name,
)
from dynembed.index.scoring import effective_oversample

KNN_MODES: tuple[KnnMode, ...] = get_args(KnnMode)


def build_client(
    endpoint: str,
    auth: str = "none",
    region: str | None = None,
    *,
    timeout: float = 30.0,
    max_retries: int = 3,
) -> OpenSearch:
    """An OpenSearch client for ``endpoint`` (a URL; a bare host means https).

    ``sigv4`` signs every request for Amazon OpenSearch Service (service name ``es``) with the
    default boto3 credential chain, re-read per request so rotated Lambda credentials just work.
    The urllib3 signer is used because urllib3 is opensearch-py's default connection class.
    """
    url = endpoint if "://" in endpoint else f"https://{endpoint}"
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"opensearch_endpoint: not an http(s) URL: {endpoint!r}")
    options: dict[str, Any] = {
        "hosts": [url],
        "timeout": timeout,
        "max_retries": max_retries,
        "connection_class": Urllib3HttpConnection,
    }
    if parsed.scheme == "https":
        options.update(use_ssl=True, verify_certs=True)
    if auth == "sigv4":
        if not region:
            raise ConfigError("region: required for SigV4 signing")
        import boto3

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConfigError("opensearch_auth=sigv4 but no AWS credentials were found")
        options["http_auth"] = Urllib3AWSV4SignerAuth(credentials, region, "es")
    elif auth != "none":
        raise ConfigError(f"opensearch_auth: must be 'none' or 'sigv4', not {auth!r}")
    return OpenSearch(**options)


@dataclass(frozen=True)
class _BulkOp:
    chunk_id: str
    lines: bytes
    """The action line and (for index) the source line, newline-terminated."""


class OpenSearchChunkIndex:
    """``ChunkIndex`` over an opensearch-py client.

    Bulk writes use ``client.bulk`` directly rather than ``helpers.bulk``/``streaming_bulk``:
    every item must be classified against its chunk id (written / version conflict / missing /
    throttled / failed), only 429 items are retried, with a backoff whose sleep is injectable for
    tests, and sources are serialised once by pydantic's Rust encoder instead of per action.
    """

    def __init__(
        self,
        client: OpenSearch,
        *,
        knn_mode: str = "native",
        engine: str = "faiss",
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        max_retries: int = 5,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        bulk_max_actions: int = 500,
        bulk_max_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if knn_mode not in KNN_MODES:
            raise ConfigError(f"knn_mode: must be one of {KNN_MODES}, not {knn_mode!r}")
        if engine not in ENGINES:
            raise ConfigError(f"engine: must be one of {ENGINES}, not {engine!r} (nmslib is deprecated)")
        self._client = client
        self.knn_mode: KnnMode = "exact" if knn_mode == "exact" else "native"
        self._engine: Engine = "lucene" if engine == "lucene" else "faiss"
        self._m = m
        self._ef_construction = ef_construction
        self._ef_search = ef_search
        self._max_retries = max_retries
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._bulk_max_actions = bulk_max_actions
        self._bulk_max_bytes = bulk_max_bytes
        self.exact = ExactKnnCache(client) if self.knn_mode == "exact" else None

    # -- index lifecycle --------------------------------------------------------------------------

    def ensure_index(self, generation: Generation) -> None:
        """Create the generation's index, or check that the existing one has its dimension and
        space (a mismatch is a ConfigError: writing would fail, searching would mislead).

        A hybrid generation's search pipeline is put first (natively; local mode fuses in
        dynembed), since the index names it as its default pipeline. The PUT is idempotent."""
        name = generation.index_name
        pipeline = self._put_search_pipeline(generation)
        body = index_body(
            generation,
            engine=self._engine,
            m=self._m,
            ef_construction=self._ef_construction,
            ef_search=self._ef_search,
            search_pipeline=pipeline,
        )
        try:
            if not self._client.indices.exists(index=name):
                self._client.indices.create(index=name, body=body)
                return
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":  # lost a creation race: verify
                raise translate_error(exc, f"create index {name}", write=True) from exc
        except OpenSearchException as exc:
            raise translate_error(exc, f"create index {name}", write=True) from exc
        self._verify_index(name, generation)

    def _put_search_pipeline(self, generation: Generation) -> str | None:
        name = search_pipeline_name(generation)
        if name is None or self.exact is not None:
            return None
        try:
            self._client.search_pipeline.put(id=name, body=search_pipeline_body(generation))
        except OpenSearchException as exc:
            raise translate_error(
                exc, f"create search pipeline {name} (needs neural-search)", write=True
            ) from exc
        return name

    def _verify_index(self, name: str, generation: Generation) -> None:
        try:
            mappings = self._client.indices.get_mapping(index=name)
        except OpenSearchException as exc:
            raise translate_error(exc, f"read mapping of {name}") from exc
        expected_space = generation.model.space.value
        for concrete, mapping in mappings.items():
            dimension = embedding_dimension(mapping)
            space = embedding_space(mapping)
            if dimension != generation.model.dimension:
                raise ConfigError(
                    f"index {concrete} exists with embedding dimension {dimension}; generation "
                    f"{generation.id} ({generation.model.model_id}) needs {generation.model.dimension}"
                )
            if space is not None and space != expected_space:
                raise ConfigError(
                    f"index {concrete} exists with space type {space}; generation {generation.id} needs "
                    f"{expected_space}"
                )

    def delete_index(self, index: str) -> None:
        """Idempotent: an index that is already gone is fine."""
        try:
            self._client.indices.delete(index=index)
        except NotFoundError:
            pass
        except OpenSearchException as exc:
            raise translate_error(exc, f"delete index {index}", write=True) from exc
        if self.exact is not None:
            self.exact.forget(index)
            return
        try:  # a hybrid generation's pipeline goes with its index (named after it)
            self._client.search_pipeline.delete(id=f"{index}-hybrid")
        except NotFoundError:
            pass
        except OpenSearchException as exc:
            raise translate_error(exc, f"delete search pipeline of {index}", write=True) from exc

    def refresh(self, index: str) -> None:
        try:
            self._client.indices.refresh(index=index)
        except OpenSearchException as exc:
            raise translate_error(exc, f"refresh {index}") from exc

    # -- writes ---------------------------------------------------------------------------------

    def write_chunks(
        self, index: str, docs: Sequence[ChunkDocument], versions: Sequence[int] | None = None
    ) -> WriteReport:
        """Index with ``version_type = external``: ``versions[i]`` for ``docs[i]`` (default: each
        doc's source_version), so a chunk never goes back to an older write, whatever order jobs
        arrive in (invariant I2)."""
        if versions is not None and len(versions) != len(docs):
            raise ValueError(f"write_chunks: {len(versions)} versions for {len(docs)} docs")
        chosen = versions if versions is not None else [doc.source_version for doc in docs]
        ops = [
            _BulkOp(doc.id, _action("index", doc.id, version) + doc.model_dump_json().encode() + b"\n")
            for doc, version in zip(docs, chosen, strict=True)
        ]
        return self._run_bulk(index, "write_chunks", ops)

    def delete_chunks(self, index: str, ids_versions: Sequence[tuple[str, int]]) -> WriteReport:
        """Delete with an external version, so a late, older write cannot resurrect the chunk
        (OpenSearch keeps the delete's version as a tombstone) (invariant I3)."""
        ops = [_BulkOp(chunk_id, _action("delete", chunk_id, version)) for chunk_id, version in ids_versions]
        return self._run_bulk(index, "delete_chunks", ops)

    def _run_bulk(self, index: str, operation: str, ops: list[_BulkOp]) -> WriteReport:
        report = WriteReport()
        failures: list[ItemFailure] = []
        pending = ops
        for attempt in range(self._max_retries + 1):
            throttled: list[_BulkOp] = []
            for batch in self._batches(pending):
                throttled.extend(self._send(index, operation, batch, report, failures))
            if not throttled:
                break
            if attempt == self._max_retries:
                if failures:
                    failures.extend(
                        ItemFailure(op.chunk_id, 429, "throttled", "retries exhausted") for op in throttled
                    )
                    break
                raise BulkThrottledError(index, operation, [op.chunk_id for op in throttled], report)
            self._sleep(min(self._max_backoff_s, self._initial_backoff_s * 2**attempt))
            pending = throttled
        if failures:
            raise BulkWriteError(index, operation, failures, report)
        return report

    def _batches(self, ops: list[_BulkOp]) -> Iterator[list[_BulkOp]]:
        batch: list[_BulkOp] = []
        size = 0
        for op in ops:
            if batch and (
                len(batch) >= self._bulk_max_actions or size + len(op.lines) > self._bulk_max_bytes
            ):
                yield batch
                batch, size = [], 0
            batch.append(op)
            size += len(op.lines)
        if batch:
            yield batch

    def _send(
        self,
        index: str,
        operation: str,
        batch: list[_BulkOp],
        report: WriteReport,
        failures: list[ItemFailure],
    ) -> list[_BulkOp]:
        """One bulk request; tallies every item and returns the throttled ones."""
        try:
            response = self._client.bulk(body=b"".join(o.lines for o in batch), index=index)
        except OpenSearchException as exc:
            if getattr(exc, "status_code", None) == 429:
                return batch  # the whole request was throttled
            raise translate_error(exc, f"{operation} on index {index}", write=True) from exc
        items = response.get("items", [])
        if len(items) != len(batch):
            raise IndexWriteError(
                f"{operation} on index {index}: bulk answered {len(items)} items for {len(batch)} actions"
            )
        throttled: list[_BulkOp] = []
        for op, item in zip(batch, items, strict=True):
            ((kind, result),) = item.items()
            status = int(result.get("status", 0))
            error = result.get("error")
            error_type = error.get("type", "") if isinstance(error, dict) else str(error or "")
            if 200 <= status < 300:
                if kind == "delete":
                    report.deleted += 1
                else:
                    report.written += 1
            elif status == 404 and kind == "delete" and result.get("result") == "not_found":
                report.missing += 1
            elif status == 409 and "version_conflict" in error_type:
                report.conflicts += 1
            elif status == 429:
                throttled.append(op)
            else:
                reason = error.get("reason", "") if isinstance(error, dict) else ""
                caused_by = error.get("caused_by") if isinstance(error, dict) else None
                if isinstance(caused_by, dict) and caused_by.get("reason"):
                    reason = f"{reason} (caused by: {caused_by['reason']})"
                failures.append(ItemFailure(op.chunk_id, status, error_type or "unknown", reason))
        return throttled

    # -- reads ----------------------------------------------------------------------------------

    def get_chunks(
        self, index: str, ids: Sequence[str], exclude: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """Stored sources (embedding included, so an ACL patch can rewrite a chunk without
        re-embedding it); missing ids are left out."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 1000):
            batch = unique[start : start + 1000]
            try:
                options = {"_source_excludes": ",".join(exclude)} if exclude else {}
                docs = self._client.mget(index=index, body={"ids": batch}, **options).get("docs", [])
            except OpenSearchException as exc:
                raise translate_error(exc, f"get_chunks from {index}") from exc
            for doc in docs:
                if doc.get("error"):
                    error = doc["error"]
                    reason = error.get("reason", error) if isinstance(error, dict) else error
                    raise DynembedError(f"get_chunks from {index}: {doc.get('_id')}: {reason}")
                if doc.get("found"):
                    found[str(doc["_id"])] = doc.get("_source", {})
        return found

    def iter_chunks(self, index: str, fields: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every chunk via a scroll (consistent view, any index size); ``fields`` selects the
        source fields (none → ids only)."""
        query: dict[str, Any] = {"_source": list(fields) if fields else False}
        try:
            for hit in helpers.scan(self._client, index=index, query=query, size=1000, scroll="2m"):
                yield str(hit["_id"]), hit.get("_source", {})
        except OpenSearchException as exc:
            raise translate_error(exc, f"iter_chunks over {index}") from exc

    def knn_search(
        self, index: str, vector: Sequence[float], k: int, filter_query: Mapping[str, Any] | None
    ) -> list[SearchHit]:
        """Top-k among chunks matching ``filter_query``, which is applied BEFORE ranking:
        inside the ``knn`` clause natively, as a pre-filter mask in exact mode."""
        return self.search(index, IndexSearch(vector=vector, k=k, filter=filter_query))

    def search(self, index: str, request: IndexSearch) -> list[SearchHit]:
        """k-NN at the generation's precision, or hybrid. Natively: OpenSearch's ``knn`` or
        ``hybrid`` query through the generation's search pipeline. In exact mode: BM25 and
        exact k-NN scored in-process over the cached index (terms from the server's analyzer),
        each under the filter, fused by the same formula the pipeline applies (``fusion``)."""
        oversample = effective_oversample(request.vectors, len(request.vector))
        if self.exact is not None:
            if not request.retrieval.hybrid:
                return self.exact.search(
                    index,
                    request.vector,
                    request.k,
                    request.filter,
                    vectors=request.vectors,
                    quantizer=request.quantizer,
                )
            lexical, nearest = self.exact.hybrid(
                index,
                request.vector,
                str(request.text),
                request.depth,
                request.filter,
                vectors=request.vectors,
                quantizer=request.quantizer,
            )
            fused = fuse_for(request.retrieval, lexical, nearest, request.k)
            return [SearchHit(h.id, h.score, copy.deepcopy(h.source)) for h in fused]
        if request.retrieval.hybrid:
            body = hybrid_query(str(request.text), request.vector, request.depth, request.filter, oversample)
            params = {"search_pipeline": request.pipeline} if request.pipeline else None
            return self._search(index, body, "hybrid search", params)[: request.k]
        return self._search(
            index, knn_query(request.vector, request.k, request.filter, oversample), "knn_search"
        )

    def _search(
        self, index: str, body: dict[str, Any], what: str, params: dict[str, Any] | None = None
    ) -> list[SearchHit]:
        try:
            options = {"params": params} if params else {}
            response = self._client.search(index=index, body=body, **options)
        except OpenSearchException as exc:
            raise translate_error(exc, f"{what} on {index}") from exc
        return [
            SearchHit(id=str(hit["_id"]), score=float(hit["_score"]), source=_without_embedding(hit))
            for hit in response.get("hits", {}).get("hits", [])
        ]

    # -- aliases --------------------------------------------------------------------------------

    def alias_target(self, alias: str) -> str | None:
        """The index the alias serves (its write index when it spans several); None if unset."""
        members = self._alias_members(alias)
        if not members:
            return None
        if len(members) == 1:
            return next(iter(members))
        writers = [name for name, is_writer in members.items() if is_writer]
        if len(writers) == 1:
            return writers[0]
        raise DynembedError(
            f"alias {alias} points to several indices {sorted(members)} and no single write index"
        )

    def swap_alias(self, alias: str, new_index: str, old_index: str | None) -> None:
        """Compare-and-swap in ONE ``_aliases`` request (invariant I6).

        Checked just before: the alias must point exactly to ``old_index`` (nowhere when None),
        else VersionConflictError. ``must_exist`` on the remove makes the server enforce it too,
        so a concurrent swap in between fails the whole request instead of leaving two
        targets. Already pointing only at ``new_index`` is success: a retried step is harmless.
        Needs OpenSearch >= 2.12 (``must_exist``).
        """
        current = set(self._alias_members(alias))
        if current == {new_index}:
            return
        expected = set() if old_index is None else {old_index}
        if current != expected:
            raise VersionConflictError(
                f"alias {alias} points to {sorted(current) or 'nothing'}, expected "
                f"{old_index or 'nothing'}; not swapping to {new_index}"
            )
        actions: list[dict[str, Any]] = []
        if old_index is not None:
            actions.append({"remove": {"index": old_index, "alias": alias, "must_exist": True}})
        actions.append({"add": {"index": new_index, "alias": alias, "is_write_index": True}})
        try:
            self._client.indices.update_aliases(body={"actions": actions})
        except NotFoundError as exc:
            if "alias" in str(exc.error):
                raise VersionConflictError(
                    f"alias {alias} changed during the swap to {new_index}: {exc}"
                ) from exc
            raise translate_error(exc, f"swap alias {alias} to {new_index}", write=True) from exc
        except OpenSearchException as exc:
            raise translate_error(exc, f"swap alias {alias} to {new_index}", write=True) from exc

    def _alias_members(self, alias: str) -> dict[str, bool]:
        """Indices behind the alias → is_write_index."""
        try:
            response = self._client.indices.get_alias(name=alias)
        except NotFoundError:
            return {}
        except OpenSearchException as exc:
            raise translate_error(exc, f"read alias {alias}") from exc
        return {
            name: bool(entry.get("aliases", {}).get(alias, {}).get("is_write_index", False))
            for name, entry in response.items()
            if alias in entry.get("aliases", {})
        }


def _action(kind: str, chunk_id: str, version: int) -> bytes:
    line = {kind: {"_id": chunk_id, "version": int(version), "version_type": "external"}}
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def _without_embedding(hit: Mapping[str, Any]) -> dict[str, Any]:
    source = dict(hit.get("_source") or {})
    source.pop(EMBEDDING_FIELD, None)
    return source


def _fits_the_port(index: OpenSearchChunkIndex) -> ChunkIndex:
    """Never called: mypy checks here that the adapter still matches the ChunkIndex Protocol."""
    return index
