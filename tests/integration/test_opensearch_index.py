"""OpenSearchChunkIndex against a real osmem-server: mapping, external versions, bulk item
errors (429 retried, others named), reads, error translation and client construction."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth
from opensearchpy.exceptions import TransportError

from dynembed.core.errors import ConfigError, IndexWriteError, TransientError
from dynembed.index.errors import BulkThrottledError, BulkWriteError
from dynembed.index.opensearch import OpenSearchChunkIndex, build_client
from dynembed_ops.local.osmem import RunningOsmem
from tests.plugins.osmem import chunk_doc, generation_for

pytestmark = pytest.mark.integration


@pytest.fixture
def index(opensearch_client: OpenSearch) -> OpenSearchChunkIndex:
    return OpenSearchChunkIndex(opensearch_client, knn_mode="exact", sleep=lambda s: None)


# -- mapping ----------------------------------------------------------------------------------


def test_ensure_index_creates_the_knn_mapping_of_the_generation(
    index: OpenSearchChunkIndex, opensearch_client: OpenSearch, index_name: str
) -> None:
    # GIVEN a 384-d cosine generation
    generation = generation_for(index_name, dimension=384)

    # WHEN its index is ensured
    index.ensure_index(generation)

    # THEN the server holds a faiss HNSW knn_vector of that dimension and space, and keyword filters
    mapping = opensearch_client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    embedding = mapping["properties"]["embedding"]
    assert embedding["type"] == "knn_vector"
    assert embedding["dimension"] == 384
    assert embedding["method"] == {
        "name": "hnsw",
        "engine": "faiss",
        "space_type": "cosinesimil",
        "parameters": {"m": 16, "ef_construction": 128},
    }
    for name in ("doc_id", "chunk_key", "acl", "tenant", "model_id", "generation", "content_hash"):
        assert mapping["properties"][name] == {"type": "keyword"}, name
    assert mapping["properties"]["source_version"] == {"type": "long"}
    assert mapping["properties"]["text"] == {"type": "text"}
    settings = opensearch_client.indices.get_settings(index=index_name)[index_name]["settings"]["index"]
    assert settings["knn"] == "true"
    assert settings["knn.algo_param.ef_search"] == "100"


def test_engine_and_hnsw_parameters_are_configurable(opensearch_client: OpenSearch, index_name: str) -> None:
    # GIVEN a lucene adapter and an inner-product model
    index = OpenSearchChunkIndex(opensearch_client, engine="lucene", m=32, ef_construction=256, ef_search=64)

    # WHEN the index is ensured
    index.ensure_index(generation_for(index_name, dimension=8, space="innerproduct"))

    # THEN the mapping carries them
    mapping = opensearch_client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    method = mapping["properties"]["embedding"]["method"]
    assert method["engine"] == "lucene"
    assert method["space_type"] == "innerproduct"
    assert method["parameters"] == {"m": 32, "ef_construction": 256}


def test_nmslib_and_unknown_modes_are_refused(opensearch_client: OpenSearch) -> None:
    with pytest.raises(ConfigError, match="nmslib"):
        OpenSearchChunkIndex(opensearch_client, engine="nmslib")
    with pytest.raises(ConfigError, match="knn_mode"):
        OpenSearchChunkIndex(opensearch_client, knn_mode="approximate")


def test_ensure_index_is_idempotent_and_refuses_another_dimension(
    index: OpenSearchChunkIndex, index_name: str
) -> None:
    # GIVEN an index ensured once with data in it
    generation = generation_for(index_name, dimension=4)
    index.ensure_index(generation)
    index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0])])

    # WHEN ensured again THEN nothing changes
    index.ensure_index(generation)
    assert set(index.get_chunks(index_name, ["d1:k0"])) == {"d1:k0"}

    # AND a generation of another dimension on the same index name is a ConfigError naming both
    with pytest.raises(ConfigError, match=r"dimension 4.*needs 8"):
        index.ensure_index(generation_for(index_name, dimension=8))


def test_strict_mapping_refuses_unknown_top_level_fields(
    index: OpenSearchChunkIndex, opensearch_client: OpenSearch, index_name: str
) -> None:
    # GIVEN an ensured index
    index.ensure_index(generation_for(index_name))

    # WHEN something writes a misspelt field THEN the server refuses it instead of mapping it
    with pytest.raises(TransportError) as caught:
        opensearch_client.index(index=index_name, id="x", body={"acls": ["g1"]})
    assert caught.value.error == "strict_dynamic_mapping_exception"


# -- external versions --------------------------------------------------------------------------


def test_older_writes_conflict_and_newer_writes_win(index: OpenSearchChunkIndex, index_name: str) -> None:
    # GIVEN chunk d1:k0 at source version 2
    index.ensure_index(generation_for(index_name))
    assert index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0], version=2)]).written == 1

    # WHEN a late job writes version 1, a replay writes version 2 again, and then version 3 arrives
    stale = index.write_chunks(index_name, [chunk_doc("d1", [0, 1, 0, 0], version=1)])
    replay = index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0], version=2)])
    newer = index.write_chunks(index_name, [chunk_doc("d1", [0, 0, 1, 0], version=3)])

    # THEN the stale write and the replay are counted conflicts (not errors) and version 3 is stored
    assert (stale.written, stale.conflicts) == (0, 1)
    assert (replay.written, replay.conflicts) == (0, 1)
    assert (newer.written, newer.conflicts) == (1, 0)
    stored = index.get_chunks(index_name, ["d1:k0"])["d1:k0"]
    assert stored["source_version"] == 3
    assert stored["embedding"] == [0.0, 0.0, 1.0, 0.0]


def test_explicit_external_versions_override_source_versions(
    index: OpenSearchChunkIndex, index_name: str
) -> None:
    # GIVEN chunk d1:k0 written with external version 13 (e.g. source version 3, a higher write rank)
    index.ensure_index(generation_for(index_name))
    assert index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0], version=3)], [13]).written == 1

    # WHEN the same source version is written with a lower external version, then a higher one
    lower = index.write_chunks(index_name, [chunk_doc("d1", [0, 1, 0, 0], version=3)], [12])
    higher = index.write_chunks(index_name, [chunk_doc("d1", [0, 0, 1, 0], version=3, acl=["g2"])], [14])

    # THEN only the higher external version lands
    assert (lower.conflicts, higher.written) == (1, 1)
    assert index.get_chunks(index_name, ["d1:k0"])["d1:k0"]["acl"] == ["g2"]
    with pytest.raises(ValueError):
        index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0])], [1, 2])


def test_stale_delete_conflicts_missing_delete_is_counted_and_tombstone_blocks_late_write(
    index: OpenSearchChunkIndex, index_name: str
) -> None:
    # GIVEN d1:k0 at version 3
    index.ensure_index(generation_for(index_name))
    index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0], version=3)])

    # WHEN a delete at version 2 arrives, then a delete at 4 plus one of a chunk never written
    stale = index.delete_chunks(index_name, [("d1:k0", 2)])
    fresh = index.delete_chunks(index_name, [("d1:k0", 4), ("ghost:k0", 4)])

    # THEN the stale delete is a conflict, the fresh one deletes, the ghost is counted missing
    assert (stale.deleted, stale.conflicts) == (0, 1)
    assert (fresh.deleted, fresh.missing, fresh.conflicts) == (1, 1, 0)
    assert index.get_chunks(index_name, ["d1:k0"]) == {}

    # AND a late write of version 3 cannot resurrect the deleted chunk (invariant I3)
    late = index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0], version=3)])
    assert (late.written, late.conflicts) == (0, 1)
    assert index.get_chunks(index_name, ["d1:k0"]) == {}


# -- bulk item errors ---------------------------------------------------------------------------


class InjectingClient:
    """The real client, except that bulk items for chosen ids are answered 429 (not sent) for
    their first N attempts. Everything else goes to osmem unchanged."""

    def __init__(self, real: OpenSearch, throttle: dict[str, int], request_429s: int = 0) -> None:
        self._real = real
        self.throttle = dict(throttle)
        self.request_429s = request_429s
        self.sent_ids: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def bulk(self, body: bytes, index: str) -> dict[str, Any]:
        if self.request_429s:
            self.request_429s -= 1
            raise TransportError(429, "too_many_requests", {"error": "rejected"})
        lines = body.decode().splitlines()
        ops: list[tuple[str, list[str]]] = []
        i = 0
        while i < len(lines):
            action = json.loads(lines[i])
            kind = next(iter(action))
            size = 2 if kind == "index" else 1
            ops.append((action[kind]["_id"], lines[i : i + size]))
            i += size
        forwarded = [(chunk_id, op) for chunk_id, op in ops if self.throttle.get(chunk_id, 0) <= 0]
        self.sent_ids.append([chunk_id for chunk_id, _ in forwarded])
        real_items = iter(
            self._real.bulk(body="\n".join(line for _, op in forwarded for line in op) + "\n", index=index)[
                "items"
            ]
            if forwarded
            else []
        )
        items = []
        for chunk_id, op in ops:
            if self.throttle.get(chunk_id, 0) > 0:
                self.throttle[chunk_id] -= 1
                kind = next(iter(json.loads(op[0])))
                items.append(
                    {
                        kind: {
                            "_id": chunk_id,
                            "status": 429,
                            "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
                        }
                    }
                )
            else:
                items.append(next(real_items))
        return {"errors": True, "items": items}


def adapter_over(client: Any, sleeps: list[float], max_retries: int = 5) -> OpenSearchChunkIndex:
    return OpenSearchChunkIndex(client, max_retries=max_retries, initial_backoff_s=0.1, sleep=sleeps.append)


def test_throttled_items_alone_are_retried_with_backoff_until_written(
    opensearch_client: OpenSearch, index_name: str
) -> None:
    # GIVEN a bulk of 4 chunks where d2 is throttled twice and d3 once
    client = InjectingClient(opensearch_client, throttle={"d2:k0": 2, "d3:k0": 1})
    sleeps: list[float] = []
    index = adapter_over(client, sleeps)
    index.ensure_index(generation_for(index_name))
    docs = [chunk_doc(f"d{i}", [1, 0, 0, i]) for i in range(4)]

    # WHEN written
    report = index.write_chunks(index_name, docs)

    # THEN everything is written; only the throttled items were resent, with doubling backoff
    assert report.written == 4 and report.conflicts == 0
    assert client.sent_ids == [["d0:k0", "d1:k0"], ["d3:k0"], ["d2:k0"]]
    assert sleeps == [0.1, 0.2]
    assert len(index.get_chunks(index_name, [d.id for d in docs])) == 4


def test_items_still_throttled_after_every_retry_raise_a_transient_error(
    opensearch_client: OpenSearch, index_name: str
) -> None:
    # GIVEN d1 throttled more often than the adapter retries
    client = InjectingClient(opensearch_client, throttle={"d1:k0": 10})
    sleeps: list[float] = []
    index = adapter_over(client, sleeps, max_retries=2)
    index.ensure_index(generation_for(index_name))

    # WHEN written THEN a TransientError names the chunk; the other chunk was written
    with pytest.raises(TransientError, match="d1:k0") as caught:
        index.write_chunks(index_name, [chunk_doc("d0", [1, 0, 0, 0]), chunk_doc("d1", [0, 1, 0, 0])])
    assert isinstance(caught.value, BulkThrottledError)
    assert caught.value.chunk_ids == ["d1:k0"]
    assert caught.value.report.written == 1
    assert len(sleeps) == 2


def test_a_whole_request_throttled_is_retried(opensearch_client: OpenSearch, index_name: str) -> None:
    # GIVEN the server rejects the first bulk request as a whole with 429
    client = InjectingClient(opensearch_client, throttle={}, request_429s=1)
    sleeps: list[float] = []
    index = adapter_over(client, sleeps)
    index.ensure_index(generation_for(index_name))

    # WHEN written THEN the retry writes it
    assert index.write_chunks(index_name, [chunk_doc("d0", [1, 0, 0, 0])]).written == 1
    assert sleeps == [0.1]


def test_a_non_retryable_item_error_names_the_chunk_and_keeps_the_rest(
    opensearch_client: OpenSearch, index_name: str
) -> None:
    # GIVEN a batch where d1 has the wrong dimension (a real mapper error) and d2 is throttled once
    client = InjectingClient(opensearch_client, throttle={"d2:k0": 1})
    index = adapter_over(client, [])
    index.ensure_index(generation_for(index_name, dimension=4))
    docs = [chunk_doc("d0", [1, 0, 0, 0]), chunk_doc("d1", [1, 0, 0]), chunk_doc("d2", [0, 0, 1, 0])]

    # WHEN written
    with pytest.raises(IndexWriteError) as caught:
        index.write_chunks(index_name, docs)

    # THEN the error is permanent, names d1 and the reason, and reports what was written
    error = caught.value
    assert isinstance(error, BulkWriteError)
    assert error.chunk_ids == ["d1:k0"]
    assert "d1:k0" in str(error) and "dimension" in str(error).lower()
    assert error.report.written == 2
    assert set(index.get_chunks(index_name, ["d0:k0", "d1:k0", "d2:k0"])) == {"d0:k0", "d2:k0"}


def test_large_writes_are_split_into_bounded_requests(opensearch_client: OpenSearch, index_name: str) -> None:
    # GIVEN an adapter capped at 3 actions per bulk request
    client = InjectingClient(opensearch_client, throttle={})
    index = OpenSearchChunkIndex(client, bulk_max_actions=3)  # type: ignore[arg-type]
    index.ensure_index(generation_for(index_name))

    # WHEN 7 chunks are written THEN three requests carry them and all are counted
    report = index.write_chunks(index_name, [chunk_doc(f"d{i}", [1, 0, 0, i]) for i in range(7)])
    assert report.written == 7
    assert [len(ids) for ids in client.sent_ids] == [3, 3, 1]


# -- reads --------------------------------------------------------------------------------------


def test_get_chunks_returns_sources_and_leaves_out_missing_ids(
    index: OpenSearchChunkIndex, index_name: str
) -> None:
    index.ensure_index(generation_for(index_name))
    index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0], acl=["g1"], metadata={"lang": "en"})])

    found = index.get_chunks(index_name, ["d1:k0", "nope:k0", "d1:k0"])

    assert list(found) == ["d1:k0"]
    assert found["d1:k0"]["acl"] == ["g1"]
    assert found["d1:k0"]["metadata"] == {"lang": "en"}
    assert found["d1:k0"]["embedding"] == [1.0, 0.0, 0.0, 0.0]


def test_iter_chunks_yields_every_chunk_with_selected_fields(
    index: OpenSearchChunkIndex, index_name: str
) -> None:
    # GIVEN 1,100 chunks (more than one scroll page)
    index.ensure_index(generation_for(index_name))
    index.write_chunks(index_name, [chunk_doc(f"d{i}", [1, 0, 0, 0], version=i + 1) for i in range(1100)])

    # WHEN iterated for two fields
    rows = dict(index.iter_chunks(index_name, ["doc_id", "source_version"]))

    # THEN every chunk comes once, with only those fields
    assert len(rows) == 1100
    assert rows["d7:k0"] == {"doc_id": "d7", "source_version": 8}


def test_iter_chunks_without_fields_yields_ids(index: OpenSearchChunkIndex, index_name: str) -> None:
    index.ensure_index(generation_for(index_name))
    index.write_chunks(index_name, [chunk_doc("d1", [1, 0, 0, 0])])
    assert [chunk_id for chunk_id, _ in index.iter_chunks(index_name, [])] == ["d1:k0"]


def test_delete_index_is_idempotent(
    index: OpenSearchChunkIndex, opensearch_client: OpenSearch, index_name: str
) -> None:
    index.ensure_index(generation_for(index_name))
    index.delete_index(index_name)
    index.delete_index(index_name)
    assert not opensearch_client.indices.exists(index=index_name)


# -- error translation and clients ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_a_transient_error() -> None:
    # GIVEN a client for a port nothing listens on
    client = build_client(f"http://127.0.0.1:{_closed_port()}", timeout=1, max_retries=0)
    index = OpenSearchChunkIndex(client)

    # WHEN writing or searching THEN the error is transient and names the index
    with pytest.raises(TransientError, match="idx-1"):
        index.write_chunks("idx-1", [chunk_doc("d1", [1, 0, 0, 0])])
    with pytest.raises(TransientError, match="idx-1"):
        index.knn_search("idx-1", [1, 0, 0, 0], 3, None)


@pytest.mark.parametrize(("status", "expected"), [(503, TransientError), (400, IndexWriteError)])
def test_request_level_errors_are_translated(
    opensearch_client: OpenSearch, status: int, expected: type[Exception]
) -> None:
    class FailingBulk:
        def __getattr__(self, name: str) -> Callable[..., Any]:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise TransportError(status, "boom", {})

            return fail

    index = OpenSearchChunkIndex(FailingBulk())  # type: ignore[arg-type]
    with pytest.raises(expected, match="idx-2"):
        index.write_chunks("idx-2", [chunk_doc("d1", [1, 0, 0, 0])])


def test_sigv4_client_signs_for_the_es_service_and_still_talks_to_the_server(osmem: RunningOsmem) -> None:
    # GIVEN a SigV4 client (credentials from the environment the test conftest sets)
    client = build_client(osmem.url, auth="sigv4", region="eu-west-1")

    # WHEN its signer signs a request
    connection = client.transport.get_connection()
    assert isinstance(connection.http_auth, Urllib3AWSV4SignerAuth)
    headers = connection.http_auth("GET", f"{osmem.url}/", None)

    # THEN the signature is scoped to eu-west-1/es, and a signed request is served
    assert "/eu-west-1/es/aws4_request" in headers["Authorization"]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256")
    assert client.info()["version"]["distribution"] == "opensearch"


@pytest.mark.parametrize(
    ("endpoint", "auth", "region"),
    [("ftp://x", "none", None), ("http://x", "basic", None), ("http://x", "sigv4", None)],
)
def test_bad_client_settings_are_config_errors(endpoint: str, auth: str, region: str | None) -> None:
    with pytest.raises(ConfigError):
        build_client(endpoint, auth=auth, region=region)


def test_a_bare_host_endpoint_means_https() -> None:
    client = build_client("search-domain.eu-west-1.es.amazonaws.com")
    connection = client.transport.get_connection()
    assert connection.host == "https://search-domain.eu-west-1.es.amazonaws.com:443"
