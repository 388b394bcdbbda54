"""The Registry port's contract, on InMemoryRegistry and on DynamoRegistry (moto)."""

from __future__ import annotations

import time

import pytest

from dynembed.core.errors import UnknownGenerationError
from dynembed.core.models import ChunkerSpec, Generation, GenerationStatus, ModelSpec
from dynembed.core.ports import Registry

MODEL = ModelSpec(provider="test", name="vectors", dimension=4)


def gen(gen_id: str, created_at: float = 1_700_000_000.0, **extra: object) -> Generation:
    return Generation(
        id=gen_id,
        index_name=f"chunks-{gen_id}",
        model=MODEL,
        chunker=ChunkerSpec(target_chars=200),
        created_at=created_at,
        **extra,  # type: ignore[arg-type]
    )


def test_unknown_generation_raises_naming_it(registry: Registry) -> None:
    with pytest.raises(UnknownGenerationError, match="'nope'"):
        registry.get("nope")


def test_put_then_get_round_trips_everything_but_updated_at(registry: Registry) -> None:
    # GIVEN a generation with a report and progress
    original = gen(
        "g1",
        status=GenerationStatus.ACTIVE,
        write_target=True,
        report={"ndcg": 0.5, "rows": [1, 2]},
        backfill={"segments": {"0": {"done": True}}},
        canary={"metrics": {"ndcg": 0.5}, "passed": True},
    )
    before = time.time()
    # WHEN it is stored and read back
    registry.put(original)
    got = registry.get("g1")
    # THEN everything is as stored, and updated_at is the time of the put
    assert got.model_dump(exclude={"updated_at"}) == original.model_dump(exclude={"updated_at"})
    assert before <= got.updated_at <= time.time() + 1


def test_report_reads_back_as_json_does(registry: Registry) -> None:
    # GIVEN a report holding a tuple (JSON has only arrays)
    registry.put(gen("g1", report={"pair": (1, 2)}))
    # THEN it reads back as a list
    assert registry.get("g1").report == {"pair": [1, 2]}


def test_list_is_ordered_by_creation(registry: Registry) -> None:
    for gen_id, created in [("b", 3.0), ("a", 1.0), ("c", 2.0)]:
        registry.put(gen(gen_id, created_at=created))
    assert [g.id for g in registry.list()] == ["a", "c", "b"]


def test_create_leaves_an_existing_generation_alone(registry: Registry) -> None:
    # GIVEN a registered generation that has moved on
    registry.create(gen("g1"))
    registry.update("g1", status=GenerationStatus.EVALUATING)
    # WHEN a retried Register creates it again  THEN nothing is reset
    registry.create(gen("g1"))
    assert registry.get("g1").status is GenerationStatus.EVALUATING


def test_put_overwrites(registry: Registry) -> None:
    registry.put(gen("g1"))
    registry.put(gen("g1", status=GenerationStatus.FAILED))
    assert registry.get("g1").status is GenerationStatus.FAILED
    assert len(registry.list()) == 1


def test_update_changes_the_named_fields_and_returns_the_result(registry: Registry) -> None:
    # GIVEN a building generation
    registry.put(gen("g1"))
    stored = registry.get("g1")
    # WHEN its status (given as a string), write flag, report and progress change
    updated = registry.update(
        "g1", status="active", write_target=1, report={"gate_passed": True}, backfill={"runs": 2}
    )
    # THEN the result and a fresh read agree, typed, with updated_at bumped
    assert updated == registry.get("g1")
    assert updated.status is GenerationStatus.ACTIVE
    assert updated.write_target is True
    assert updated.report == {"gate_passed": True}
    assert updated.backfill == {"runs": 2}
    assert updated.updated_at >= stored.updated_at
    assert updated.model == stored.model and updated.created_at == stored.created_at


def test_the_latest_canary_report_is_updated_on_its_own(registry: Registry) -> None:
    # GIVEN a generation with an evaluation report
    registry.put(gen("g1", report={"gate_passed": True}))
    # WHEN a canary report is stored on it, then replaced by the next one
    registry.update("g1", canary={"created_at": 1.0, "drops": {"ndcg": 0.0}})
    updated = registry.update("g1", canary={"created_at": 2.0, "drops": {"ndcg": 0.1}})
    # THEN the latest one is kept and the evaluation report is untouched
    assert updated.canary == registry.get("g1").canary == {"created_at": 2.0, "drops": {"ndcg": 0.1}}
    assert registry.get("g1").report == {"gate_passed": True}


def test_update_of_an_unknown_generation_raises(registry: Registry) -> None:
    with pytest.raises(UnknownGenerationError):
        registry.update("nope", status=GenerationStatus.FAILED)
    assert registry.list() == []


def test_update_of_a_field_that_is_not_updatable_raises(registry: Registry) -> None:
    registry.put(gen("g1"))
    with pytest.raises(ValueError, match="index_name"):
        registry.update("g1", index_name="elsewhere")
    assert registry.get("g1").index_name == "chunks-g1"


def test_an_invalid_status_raises(registry: Registry) -> None:
    registry.put(gen("g1"))
    with pytest.raises(ValueError):
        registry.update("g1", status="half-built")


def test_reads_are_copies(registry: Registry) -> None:
    registry.put(gen("g1", report={"a": 1}))
    got = registry.get("g1")
    assert got.report is not None
    got.report["a"] = 2
    assert registry.get("g1").report == {"a": 1}
