"""The SourceReader port's contract, on InMemorySource and on DynamoSourceReader (moto):
strongly consistent reads returning DynamoDB's Python types, and a parallel scan that visits
every item exactly once."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.conftest import SourceTable


def test_missing_items(source: SourceTable) -> None:
    assert source.reader.get_item("nope") is None
    assert source.reader.get_items(["nope"]) == {}


def test_items_come_back_with_dynamodb_types(source: SourceTable) -> None:
    # GIVEN an item written with ints, a float, a string set, a list and a map
    source.put(
        {"doc_id": "d1", "version": 3, "score": 0.5, "acl": {"g1", "g2"}, "tags": ["a", 1], "meta": {"n": 2}}
    )
    # WHEN it is read, alone and in a batch
    got = source.reader.get_item("d1")
    # THEN numbers are Decimal (everywhere), sets stay sets, lists lists
    assert got == {
        "doc_id": "d1",
        "version": Decimal(3),
        "score": Decimal("0.5"),
        "acl": {"g1", "g2"},
        "tags": ["a", Decimal(1)],
        "meta": {"n": Decimal(2)},
    }
    assert isinstance(got["version"], Decimal) and isinstance(got["tags"][1], Decimal)
    assert source.reader.get_items(["d1", "d1", "d2"]) == {"d1": got}


def test_batch_reads_span_more_than_one_page(source: SourceTable) -> None:
    # GIVEN more items than one BatchGetItem takes (100)
    for i in range(130):
        source.put({"doc_id": f"d{i:03}", "version": i})
    # WHEN all are asked for at once  THEN all come back, keyed by id
    got = source.reader.get_items([f"d{i:03}" for i in range(135)])
    assert sorted(got) == [f"d{i:03}" for i in range(130)]
    assert got["d042"]["version"] == 42


def _scan_all(source: SourceTable, total_segments: int, limit: int) -> list[str]:
    seen: list[str] = []
    for segment in range(total_segments):
        start = None
        for _ in range(1000):
            items, start = source.reader.scan_segment(segment, total_segments, start, limit)
            assert len(items) <= limit
            seen += [str(i["doc_id"]) for i in items]
            if start is None:
                break
    return seen


# One table across examples is fine: each example's items have their own prefix.
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 40), total_segments=st.integers(1, 4), limit=st.integers(1, 7))
def test_a_parallel_scan_visits_every_item_exactly_once(
    source: SourceTable, n: int, total_segments: int, limit: int
) -> None:
    # Oracle: the union of the segments' pages is the table, with no repeats.
    for i in range(n):
        source.put({"doc_id": f"s{n}-{i}", "version": 1})
    wanted = {f"s{n}-{i}" for i in range(n)}
    seen = [d for d in _scan_all(source, total_segments, limit) if d.startswith(f"s{n}-")]
    assert sorted(seen) == sorted(wanted)


def test_a_scan_resumes_after_its_key_even_if_that_item_was_deleted(source: SourceTable) -> None:
    # GIVEN a scan that stopped after a first page
    for i in range(6):
        source.put({"doc_id": f"d{i}", "version": 1})
    first, start = source.reader.scan_segment(0, 1, None, 2)
    assert start is not None
    # WHEN the item its key names is deleted before the next page
    source.delete(str(start["doc_id"]))
    rest: list[str] = []
    while start is not None:
        items, start = source.reader.scan_segment(0, 1, start, 2)
        rest += [str(i["doc_id"]) for i in items]
    # THEN the scan goes on with the remaining items, none twice
    seen = [str(i["doc_id"]) for i in first] + rest
    assert sorted(seen) == [f"d{i}" for i in range(6)]
