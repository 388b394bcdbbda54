"""The rebuild input ops paste into the console: defaults, every wrong field named, the
examples in events/ valid, golden sets found where a Lambda can read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynembed.core.config import TUNING, Settings
from dynembed.core.errors import ConfigError
from dynembed.core.models import ChunkerSpec
from dynembed.quality.evaluation import GatePolicy
from dynembed.rebuild import plan
from dynembed.rebuild.evaluate import load_eval_set
from dynembed.rebuild.inputs import MAX_BACKFILL_SEGMENTS, RebuildInput, parse_rebuild_input
from tests.events import load_event

pytestmark = pytest.mark.unit

FAQ_EVAL = {"queries": "data/python-faq/queries.jsonl", "qrels": "data/python-faq/qrels.tsv"}


def test_minimal_input_gets_the_documented_defaults() -> None:
    # GIVEN only a model
    # WHEN it is parsed
    config = parse_rebuild_input({"model": "hash-256"})
    # THEN tuning comes from config.TUNING, the chunker and gate from their models, approval is off
    assert config.backfill_segments is None and config.backfill_concurrency is None  # sized from the table
    assert plan.segments_for(120, config.backfill_segments, MAX_BACKFILL_SEGMENTS) == TUNING.backfill_segments
    assert config.approve_estimate is False
    assert config.page_size == TUNING.backfill_page_size
    assert config.catchup_wait_s == TUNING.catchup_wait_s
    assert config.chunker_spec() == ChunkerSpec()
    assert config.gate == GatePolicy()
    assert config.require_approval is False
    assert config.generation_id is None
    assert config.eval_principal == ["public"]


def test_normalised_input_round_trips_through_json() -> None:
    # GIVEN an input as the Validate step returns it (JSON, as Step Functions carries it)
    config = parse_rebuild_input(
        {"model": "hash-256", "generation_id": "g1", "chunker": {"max_doc_chars": 80}, "eval": FAQ_EVAL}
    )
    carried = json.loads(json.dumps(config.model_dump(mode="json")))
    # WHEN a later step parses it again
    again = parse_rebuild_input(carried)
    # THEN it is the same input, and the chunker version (hence the generation) is the same
    assert again == config
    assert again.chunker_spec().version == ChunkerSpec(max_doc_chars=80).version


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"model": "no-such-model"}, "model", "unknown embedding model"),
        ({}, "model", "Field required"),
        ({"model": "hash-256", "modle": "x"}, "modle", "unknown field"),
        ({"model": "hash-256", "chunker": {"target_char": 5}}, "chunker.target_char", "unknown field"),
        ({"model": "hash-256", "chunker": {"name": "fixed"}}, "chunker.name", "unknown chunker"),
        ({"model": "hash-256", "chunker": {"min_chars": 900, "target_chars": 500}}, "chunker", "min_chars"),
        ({"model": "hash-256", "gate": {"min_ndcg": 1.5}}, "gate.min_ndcg", "less than or equal to 1"),
        ({"model": "hash-256", "gate": {"min_ndgc": 0.5}}, "gate.min_ndgc", "unknown field"),
        ({"model": "hash-256", "k": 0}, "k", "greater than or equal to 1"),
        ({"model": "hash-256", "backfill_segments": 1001}, "backfill_segments", "less than or equal to 1000"),
        ({"model": "hash-256", "generation_id": "Has Spaces"}, "generation_id", "pattern"),
        (
            {"model": "hash-256", "eval": {"queries": "s3://b", "qrels": "q.tsv"}},
            "eval.queries",
            "s3://bucket/key",
        ),
        ({"model": "hash-256", "eval": {"queries": "q.jsonl"}}, "eval.qrels", "Field required"),
        ({"model": "hash-256", "eval_principal": [" "]}, "eval_principal", "non-empty"),
        ({"model": "hash-256", "require_approval": "perhaps"}, "require_approval", "boolean"),
    ],
)
def test_every_wrong_field_is_named(raw: dict[str, object], field: str, words: str) -> None:
    # GIVEN an input with one mistake
    # WHEN it is parsed
    with pytest.raises(ConfigError) as caught:
        parse_rebuild_input(raw)
    # THEN the error names the field and says what is wrong
    message = str(caught.value)
    assert f"{field}: " in message
    assert words in message


def test_several_mistakes_are_all_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rebuild_input({"model": "nope", "k": -1, "page_size": 0})
    message = str(caught.value)
    assert "model: " in message and "k: " in message and "page_size: " in message


def test_input_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a JSON object"):
        parse_rebuild_input(["model", "hash-256"])


def test_a_single_principal_string_becomes_a_list() -> None:
    assert parse_rebuild_input({"model": "hash-256", "eval_principal": "reader"}).eval_principal == ["reader"]


@pytest.mark.parametrize(
    "name",
    [
        "rebuild_input",
        "rebuild_input_chunker_only",
        "rebuild_input_bad_candidate",
        "rebuild_input_hybrid",
        "rebuild_input_hybrid_rrf",
        "rebuild_input_binary",
        "rebuild_input_float16",
    ],
)
def test_the_examples_in_events_are_valid(name: str) -> None:
    # GIVEN an example ops would paste into the console
    # WHEN it is parsed (and its golden set loaded as the Validate step does)
    config = parse_rebuild_input(load_event(name))
    golden = load_eval_set(config, Settings())
    # THEN it is valid and its golden set is found relative to the repository
    assert isinstance(config, RebuildInput)
    assert len(golden.judged_query_ids) > 100


def test_the_examples_differ_as_their_names_say() -> None:
    default, chunker_only, bad = (
        parse_rebuild_input(load_event(n))
        for n in ("rebuild_input", "rebuild_input_chunker_only", "rebuild_input_bad_candidate")
    )
    assert chunker_only.model == default.model
    assert chunker_only.chunker_spec().version != default.chunker_spec().version
    assert bad.model == "hash-256"


def test_targeted_backfill_event_names_its_step_and_one_selector() -> None:
    event = load_event("targeted_backfill")
    assert event["step"] == "targeted_backfill"
    assert sum(1 for key in ("tenant", "source_type", "ids") if event.get(key)) == 1


# ---- golden-set locations ---------------------------------------------------------------------


def test_relative_eval_paths_resolve_under_eval_dir_first(tmp_path: Path) -> None:
    # GIVEN DYNEMBED_EVAL_DIR holding a golden set named like the bundled one
    (tmp_path / "data" / "python-faq").mkdir(parents=True)
    (tmp_path / "data" / "python-faq" / "queries.jsonl").write_text('{"query_id": "q1", "text": "hello"}\n')
    (tmp_path / "data" / "python-faq" / "qrels.tsv").write_text("q1\td1\t1\n")
    config = parse_rebuild_input({"model": "hash-256", "eval": FAQ_EVAL})
    # WHEN it is loaded
    golden = load_eval_set(config, Settings(eval_dir=str(tmp_path)))
    # THEN the eval dir's copy wins over the repository's
    assert golden.queries == {"q1": "hello"}


def test_eval_dir_is_the_default_golden_set(tmp_path: Path) -> None:
    (tmp_path / "queries.jsonl").write_text('{"query_id": "q1", "text": "hello"}\n')
    (tmp_path / "qrels.tsv").write_text("q1\td1\t2\n")
    golden = load_eval_set(parse_rebuild_input({"model": "hash-256"}), Settings(eval_dir=str(tmp_path)))
    assert golden.qrels == {"q1": {"d1": 2}}


def test_no_golden_set_anywhere_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="eval: "):
        load_eval_set(parse_rebuild_input({"model": "hash-256"}), Settings(eval_dir=""))


def test_a_missing_eval_file_names_the_field_and_where_it_looked() -> None:
    config = parse_rebuild_input(
        {"model": "hash-256", "eval": {"queries": "nowhere/queries.jsonl", "qrels": FAQ_EVAL["qrels"]}}
    )
    with pytest.raises(ConfigError) as caught:
        load_eval_set(config, Settings(eval_dir=""))
    assert "eval.queries: file not found: nowhere/queries.jsonl" in str(caught.value)
    assert str(Path.cwd()) in str(caught.value)


def test_a_malformed_golden_set_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "queries.jsonl").write_text('{"query_id": "q1", "text": "hello"}\nnot json\n')
    (tmp_path / "qrels.tsv").write_text("q1\td1\t1\n")
    config = parse_rebuild_input(
        {
            "model": "hash-256",
            "eval": {"queries": str(tmp_path / "queries.jsonl"), "qrels": str(tmp_path / "qrels.tsv")},
        }
    )
    with pytest.raises(ConfigError, match=r"eval: .*queries.jsonl:2: not valid JSON"):
        load_eval_set(config, Settings())
