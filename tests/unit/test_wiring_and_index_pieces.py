"""Small pieces with no flow of their own: the wiring of adapters from settings (constructing a
client opens no connection), the index mapping, the translation of OpenSearch errors, and the
Evaluate step's file handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, TransportError

from dynembed import wiring
from dynembed.core.config import Settings
from dynembed.core.errors import ConfigError, DynembedError, IndexWriteError, TransientError
from dynembed.core.models import DistanceSpace
from dynembed.core.ports import WriteReport
from dynembed.core.schema import SourceSchema
from dynembed.index.errors import BulkThrottledError, BulkWriteError, ItemFailure, translate_error
from dynembed.index.mapping import embedding_dimension, embedding_space, index_body
from dynembed.rebuild import evaluate
from dynembed.rebuild.inputs import EvalSetInput, RebuildInput
from tests.plugins.osmem import generation_for

pytestmark = pytest.mark.unit

SETTINGS = Settings(
    ledger_table="L",
    registry_table="R",
    embedding_cache_table="C",
    held_jobs_table="H",
    source_table="S",
    jobs_queue_url="https://sqs.test/jobs",
    stream_failures_queue_url="https://sqs.test/failures",
    opensearch_endpoint="https://search.test",
)


# ---- wiring ---------------------------------------------------------------------------------------


def test_services_bind_each_adapter_to_its_configured_resource() -> None:
    from dynembed.adapters.dynamodb.cache import DynamoEmbeddingCache
    from dynembed.adapters.dynamodb.held_jobs import DynamoHeldJobs
    from dynembed.adapters.dynamodb.ledger import DynamoLedger
    from dynembed.adapters.dynamodb.registry import DynamoRegistry
    from dynembed.adapters.dynamodb.source import DynamoSourceReader
    from dynembed.adapters.sqs import SqsDeadLetters, SqsJobQueue
    from dynembed.index.opensearch import OpenSearchChunkIndex

    svc = wiring.Services(settings=SETTINGS, schema=SourceSchema(id_attribute="pk"))
    assert isinstance(svc.ledger, DynamoLedger) and svc.ledger.model.Meta.table_name == "L"
    assert isinstance(svc.registry, DynamoRegistry) and svc.registry.model.Meta.table_name == "R"
    assert isinstance(svc.cache, DynamoEmbeddingCache) and svc.cache.model.Meta.table_name == "C"
    assert isinstance(svc.held, DynamoHeldJobs) and svc.held.model.Meta.table_name == "H"
    assert isinstance(svc.source, DynamoSourceReader) and svc.source.id_attribute == "pk"
    assert isinstance(svc.queue, SqsJobQueue) and svc.queue.queue_url == SETTINGS.jobs_queue_url
    assert isinstance(svc.dead_letters, SqsDeadLetters)
    assert isinstance(svc.index, OpenSearchChunkIndex) and svc.index.knn_mode == "native"
    # Built once per process (Lambda cold start).
    assert svc.ledger is svc.ledger


def test_no_failure_queue_means_no_dead_letters() -> None:
    assert wiring.Services(settings=Settings(), schema=SourceSchema()).dead_letters is None


def test_one_embedder_per_model_per_process() -> None:
    from dynembed.embedders.catalog import spec_for

    svc = wiring.Services(settings=Settings(), schema=SourceSchema())
    spec = spec_for("hash-256")
    assert svc.embedder_for(spec) is svc.embedder_for(spec)
    assert svc.embedder_for(spec).spec == spec


def test_the_process_wide_services_are_built_once_and_reset_on_demand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DYNEMBED_LEDGER_TABLE", "from-env")
    wiring.reset_services()
    try:
        first = wiring.services()
        assert first is wiring.services() and first.settings.ledger_table == "from-env"
        replacement = wiring.Services(settings=SETTINGS, schema=SourceSchema())
        wiring.reset_services(replacement)
        assert wiring.services() is replacement
    finally:
        wiring.reset_services()


# ---- the index mapping ------------------------------------------------------------------------------


def test_the_mapping_follows_the_generation() -> None:
    body = index_body(generation_for("i", dimension=8, space="l2"), engine="lucene", ef_search=64)
    embedding = body["mappings"]["properties"]["embedding"]
    assert (embedding["dimension"], embedding["method"]["engine"], embedding["method"]["space_type"]) == (
        8,
        "lucene",
        "l2",
    )
    assert body["mappings"]["dynamic"] == "strict"
    assert body["settings"]["index"]["knn.algo_param.ef_search"] == 64
    # Read back the way GET _mapping returns it.
    assert embedding_dimension(body) == 8 and embedding_space(body) == "l2"
    assert embedding_dimension({"mappings": {}}) is None and embedding_space({}) is None
    assert (
        embedding_space({"mappings": {"properties": {"embedding": {"space_type": "innerproduct"}}}})
        == "innerproduct"
    )
    with pytest.raises(ValueError, match="nmslib"):
        index_body(generation_for("i"), engine="nmslib")  # type: ignore[arg-type]
    assert DistanceSpace("l2") is DistanceSpace.L2


# ---- OpenSearch errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_throttling_and_unavailability_are_transient(status: int) -> None:
    error = translate_error(TransportError(status, "busy", {}), "write_chunks on i", write=True)
    assert isinstance(error, TransientError) and f"answered {status}" in str(error)


def test_an_unreachable_server_is_transient() -> None:
    error = translate_error(OpenSearchConnectionError("N/A", "refused", None), "refresh i")
    assert isinstance(error, TransientError) and "unreachable" in str(error)


def test_other_errors_are_permanent_and_name_the_operation() -> None:
    write = translate_error(
        TransportError(400, "mapper_parsing_exception", {}), "write_chunks on i", write=True
    )
    read = translate_error(NotFoundError(404, "index_not_found_exception", {}), "get_chunks from i")
    assert isinstance(write, IndexWriteError) and str(write).startswith("write_chunks on i")
    assert type(read) is DynembedError and "get_chunks from i" in str(read)


def test_bulk_errors_carry_every_failure_and_what_succeeded() -> None:
    failures = [ItemFailure(f"d{i}:k", 400, "mapper_parsing_exception", "bad") for i in range(12)]
    error = BulkWriteError("i", "write_chunks", failures, WriteReport(written=3))
    assert error.chunk_ids == [f"d{i}:k" for i in range(12)] and error.report.written == 3
    assert "12 chunk(s) failed" in str(error) and "(+2 more)" in str(error) and "d9:k" in str(error)
    throttled = BulkThrottledError("i", "delete_chunks", [f"c{i}" for i in range(11)], WriteReport())
    assert isinstance(throttled, TransientError) and "(+1 more)" in str(throttled)


# ---- the Evaluate step's files ---------------------------------------------------------------------------


def test_a_relative_golden_set_is_found_under_the_eval_dir(tmp_path: Path) -> None:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "queries.jsonl").write_text(json.dumps({"query_id": "q1", "text": "pip"}) + "\n")
    (folder / "qrels.tsv").write_text("q1\td1\t1\n")
    settings = Settings(eval_dir=str(folder))
    # Named in the input, relative to DYNEMBED_EVAL_DIR
    named = RebuildInput(model="hash-256", eval=EvalSetInput(queries="queries.jsonl", qrels="qrels.tsv"))
    assert evaluate.load_eval_set(named, settings).queries == {"q1": "pip"}
    # Not named: DYNEMBED_EVAL_DIR's own files
    assert evaluate.load_eval_set(RebuildInput(model="hash-256"), settings).name == "faq"
    with pytest.raises(ConfigError, match="DYNEMBED_EVAL_DIR is not set"):
        evaluate.load_eval_set(RebuildInput(model="hash-256"), Settings())


def test_a_broken_golden_set_names_the_eval_field(tmp_path: Path) -> None:
    (tmp_path / "queries.jsonl").write_text("not json\n")
    (tmp_path / "qrels.tsv").write_text("")
    config = RebuildInput(
        model="hash-256",
        eval=EvalSetInput(queries=str(tmp_path / "queries.jsonl"), qrels=str(tmp_path / "qrels.tsv")),
    )
    with pytest.raises(ConfigError, match=r"^eval: "):
        evaluate.load_eval_set(config, Settings())


def test_a_golden_set_is_named_after_its_folder() -> None:
    assert evaluate._set_name("s3://bucket/sets/faq/queries.jsonl") == "faq"
    assert evaluate._set_name("queries.jsonl") == "golden"
