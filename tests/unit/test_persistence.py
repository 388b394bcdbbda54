"""`dynembed up --data-dir`: the source journal and the registry file on disk, and how they read
back after a stop or a kill (files only; the restore into a running stack is tested end to end)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynembed.core.errors import ConfigError
from dynembed.core.schema import SourceSchema
from dynembed_ops.local.persistence import DataDir, SourceJournal, _client_item, journal_pump, key_of

pytestmark = pytest.mark.unit


def _record(event: str, doc_id: str, image: dict[str, Any] | None = None, seq: int = 0) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {"doc_id": {"S": doc_id}}, "SequenceNumber": f"{seq:05d}"}
    if image is not None:
        change["NewImage"] = image
    return {"eventName": event, "dynamodb": change}


def _image(doc_id: str, version: int, *acl: str) -> dict[str, Any]:
    item: dict[str, Any] = {"doc_id": {"S": doc_id}, "version": {"N": str(version)}, "body": {"S": "x"}}
    if acl:
        item["acl"] = {"SS": list(acl)}
    return item


def _key(doc_id: str) -> str:
    return key_of({"doc_id": {"S": doc_id}})


def test_the_journal_replays_puts_and_deletes_from_any_client(tmp_path: Path) -> None:
    # GIVEN stream records of puts, an update and a delete, journaled in two batches
    data = DataDir(tmp_path)
    journal = SourceJournal(data.source_journal)
    journal({"Records": [_record("INSERT", "a", _image("a", 1)), _record("INSERT", "b", _image("b", 1))]})
    journal({"Records": [_record("MODIFY", "a", _image("a", 2)), _record("REMOVE", "b")]})
    # WHEN it is read back
    replay = data.read_source()
    # THEN the last image of each live item remains
    assert replay.items == {_key("a"): _image("a", 2)}
    assert (replay.lines, replay.torn_tail) == (4, False)


def test_a_line_cut_short_by_a_kill_is_left_out_and_compaction_drops_it(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    SourceJournal(data.source_journal)({"Records": [_record("INSERT", "a", _image("a", 1))]})
    with data.source_journal.open("a") as handle:
        handle.write('{"op": "put", "keys": {"doc_id": {"S": "b"}}, "item": {"doc_')  # killed mid-write
    replay = data.read_source()
    assert replay.torn_tail and list(replay.items) == [_key("a")]
    data.compact(replay)
    again = data.read_source()
    assert again.items == replay.items and not again.torn_tail and again.lines == 1


def test_a_damaged_line_inside_the_journal_is_an_error_naming_it(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    data.source_journal.write_text(
        '{"op": "put", "keys": {}, "item": {}}\nnot json\n{"op": "delete", "keys": {}}\n'
    )
    with pytest.raises(ConfigError, match=r"source.jsonl:2: unreadable journal line"):
        data.read_source()


def test_restored_items_echoed_by_the_stream_are_not_journaled_twice(tmp_path: Path) -> None:
    # GIVEN a restore wrote back a and b (a's set in another order than the stream returns it)
    data = DataDir(tmp_path)
    echoes = {_key("a"): _image("a", 3, "x", "y"), _key("b"): _image("b", 1)}
    journal = SourceJournal(data.source_journal, echoes=echoes)
    # WHEN the stream delivers their INSERT records, then a client changes b, then writes a again
    journal(
        {
            "Records": [
                _record("INSERT", "a", _image("a", 3, "y", "x")),
                _record("INSERT", "b", _image("b", 1)),
                _record("MODIFY", "b", _image("b", 2)),
                _record("MODIFY", "a", _image("a", 3, "x", "y")),
            ]
        }
    )
    # THEN only the changes after the echoes are new lines
    lines = [json.loads(line) for line in data.source_journal.read_text().splitlines()]
    assert [(line["keys"]["doc_id"]["S"], line["item"]["version"]["N"]) for line in lines] == [
        ("b", "2"),
        ("a", "3"),
    ]


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 3)), min_size=1, max_size=40),
    batch=st.integers(1, 7),
    cut=st.integers(1, 60),
)
def test_replay_is_the_table_a_kill_left(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]], batch: int, cut: int
) -> None:
    # Oracle: a dict applying the same puts (n > 0) and deletes (n == 0) in order.
    data = DataDir(tmp_path_factory.mktemp("data"))
    journal = SourceJournal(data.source_journal)
    table: dict[str, dict[str, Any]] = {}
    records = []
    for version, (doc_id, n) in enumerate(ops, start=1):
        if n:
            table[_key(doc_id)] = _image(doc_id, version)
            records.append(_record("MODIFY", doc_id, _image(doc_id, version)))
        else:
            table.pop(_key(doc_id), None)
            records.append(_record("REMOVE", doc_id))
    for start in range(0, len(records), batch):
        journal({"Records": records[start : start + batch]})
    assert data.read_source().items == table
    # A kill in the middle of the last line loses that change only.
    text = data.source_journal.read_text()
    last_line = text[text.rstrip("\n").rfind("\n") + 1 :]
    data.source_journal.write_text(
        text[: len(text) - len(last_line)] + last_line[: min(cut, len(last_line) - 2)]
    )
    before: dict[str, dict[str, Any]] = {}
    for version, (doc_id, n) in enumerate(ops[:-1], start=1):
        if n:
            before[_key(doc_id)] = _image(doc_id, version)
        else:
            before.pop(_key(doc_id), None)
    replay = data.read_source()
    assert replay.items == before and replay.torn_tail


def test_the_registry_file_is_rewritten_only_when_rows_change(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    rows = [{"generation_id": {"S": "g1"}, "status": {"S": "active"}}]
    assert data.write_registry(rows) is True
    assert data.write_registry(rows) is False
    assert data.read_registry() == rows
    assert data.write_registry([{**rows[0], "status": {"S": "standby"}}]) is True
    assert not list(tmp_path.glob("*.tmp"))


def test_the_data_dir_keeps_its_schema_and_refuses_another(tmp_path: Path) -> None:
    custom = SourceSchema(metadata_attributes=("category",))
    assert DataDir(tmp_path).schema_for(custom) == custom
    assert DataDir(tmp_path).schema_for(None) == custom  # restarted without --schema
    with pytest.raises(ConfigError, match="written with another source schema"):
        DataDir(tmp_path).schema_for(SourceSchema())


def test_one_stack_at_a_time_holds_a_data_dir(tmp_path: Path) -> None:
    first = DataDir(tmp_path).lock()
    try:
        with pytest.raises(ConfigError, match=r"in use by another `dynembed up` \(pid \d+\)"):
            DataDir(tmp_path).lock()
    finally:
        first.unlock()
    DataDir(tmp_path).lock().unlock()


def test_binary_values_go_back_to_the_client_as_bytes() -> None:
    raw = b"\x00\xffpng"
    encoded = base64.b64encode(raw).decode()
    item = {"blob": {"B": encoded}, "nested": {"M": {"parts": {"L": [{"BS": [encoded]}, {"S": "t"}]}}}}
    assert _client_item(item) == {
        "blob": {"B": raw},
        "nested": {"M": {"parts": {"L": [{"BS": [raw]}, {"S": "t"}]}}},
    }


class OneShardStream:
    """Serves the given records once, from one shard (what the pump reads)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "it"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        served, self.records = self.records, []
        return {"Records": served, "NextShardIterator": "it"}


def test_a_journal_that_cannot_be_written_is_retried_never_dropped(tmp_path: Path) -> None:
    # GIVEN the journal's folder is missing (a file stands where it should be)
    blocked = tmp_path / "data"
    blocked.write_text("not a folder")
    records = [_record("INSERT", d, _image(d, 1), seq=n) for n, d in enumerate("abc")]
    pump = journal_pump(OneShardStream(records), "arn", SourceJournal(blocked / "source.jsonl"), "us-east-1")
    # WHEN the pump runs many rounds, THEN nothing is settled (nor sent anywhere)
    assert all(pump.step() == 0 for _ in range(50))
    assert pump.stats.sent_to_failure_destination == 0
    # and once the folder is back, every record reaches the journal
    blocked.unlink()
    blocked.mkdir()
    assert pump.step() == 3
    assert list(DataDir(blocked).read_source().items) == [_key("a"), _key("b"), _key("c")]
