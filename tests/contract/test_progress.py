"""The backfill ProgressStore's contract (dynembed.rebuild.progress), on RegistryProgressStore
over the fake registry and on DynamoProgressStore (compare-and-set on moto): progress lives on
the generation's registry item, read-modify-write as one change."""

from __future__ import annotations

import pytest

from dynembed.core.errors import UnknownGenerationError
from dynembed.core.models import ChunkerSpec, Generation, ModelSpec
from dynembed.rebuild.progress import BackfillProgress, SegmentProgress
from tests.contract.conftest import ProgressUnderTest


def registered(p: ProgressUnderTest, gen_id: str = "g1") -> str:
    p.registry.put(
        Generation(
            id=gen_id,
            index_name=f"i-{gen_id}",
            model=ModelSpec(provider="t", name="m", dimension=2),
            chunker=ChunkerSpec(),
        )
    )
    return gen_id


def test_a_backfill_that_never_started_has_no_progress(progress: ProgressUnderTest) -> None:
    assert progress.store.load(registered(progress)) is None


def test_a_change_is_stored_and_returned(progress: ProgressUnderTest) -> None:
    # GIVEN a registered generation  WHEN its backfill starts, then one segment records a page
    gen_id = registered(progress)
    fresh = progress.store.change(gen_id, lambda old: old or BackfillProgress.fresh(2, 50))
    assert fresh.pending_segments == [0, 1]

    def one_page(old: BackfillProgress | None) -> BackfillProgress:
        assert old is not None
        segments = {**old.segments, 1: SegmentProgress(last_key={"doc_id": "d9"}, pages=1, docs=50)}
        return old.model_copy(update={"segments": segments})

    after = progress.store.change(gen_id, one_page)
    # THEN a fresh load sees exactly what the change returned, and the registry item holds it
    assert progress.store.load(gen_id) == after
    assert after.segments[1].last_key == {"doc_id": "d9"} and after.total("docs") == 50
    assert progress.registry.get(gen_id).backfill == after.record()


def test_each_change_sees_the_previous_one(progress: ProgressUnderTest) -> None:
    gen_id = registered(progress)
    progress.store.change(gen_id, lambda old: BackfillProgress.fresh(1, 10))
    for _ in range(5):
        progress.store.change(gen_id, lambda old: old.model_copy(update={"runs": old.runs + 1}))  # type: ignore[union-attr]
    stored = progress.store.load(gen_id)
    assert stored is not None and stored.runs == 6


def test_progress_of_an_unknown_generation_is_an_error(progress: ProgressUnderTest) -> None:
    with pytest.raises(UnknownGenerationError):
        progress.store.load("ghost")
    with pytest.raises(UnknownGenerationError):
        progress.store.change("ghost", lambda old: BackfillProgress.fresh(1, 10))
