"""`dynembed load` checks the whole corpus before writing anything: every bad line is reported with
its line number, doc id, attribute and reason, and a corpus with any bad line writes nothing."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynembed.core.schema import SourceSchema
from dynembed_ops.source_app import SHOWN_PROBLEMS, CorpusError, SourceApp, check_corpus

pytestmark = pytest.mark.unit

SCHEMA = SourceSchema(metadata_attributes=("category",))


@dataclass
class RecordingTable:
    """The part of a boto3 Table that ``SourceApp.load`` uses, remembering every put."""

    puts: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def batch_writer(self) -> Any:
        yield self

    def put_item(self, Item: dict[str, Any]) -> None:  # boto3 names it Item
        self.puts.append(Item)


def _corpus(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _good(doc_id: str, **extra: Any) -> str:
    return json.dumps({"doc_id": doc_id, "title": doc_id, "body": "text", "acl": ["public"], **extra})


BAD_LINES = {
    "not json": ('{"doc_id": "x", "body": ', None, None, "not valid JSON"),
    "not an object": ("[1, 2]", None, None, "expected a JSON object"),
    "no id": ('{"body": "x"}', None, "doc_id", "missing id attribute"),
    "version text": (_good("v-text", version="seven"), "v-text", "version", "must be an integer number"),
    "version fraction": (_good("v-frac", version=1.5), "v-frac", "version", "must be a whole number"),
    "version negative": (_good("v-neg", version=-3), "v-neg", "version", "negative"),
    "acl number": (_good("acl-num", acl=5), "acl-num", "acl", ""),
    "nan": ('{"doc_id": "nan", "body": "x", "score": NaN}', "nan", "score", "DynamoDB cannot store it"),
}


def test_every_bad_line_is_named_with_doc_attribute_and_reason(tmp_path: Path) -> None:
    # GIVEN a corpus with a good first line, then one line of each kind of mistake, then a good one
    lines = [_good("first")] + [line for line, *_ in BAD_LINES.values()] + [_good("last")]
    path = _corpus(tmp_path, *lines)
    # WHEN it is checked
    with pytest.raises(CorpusError) as raised:
        check_corpus(SCHEMA, path)
    # THEN each bad line is reported, in order, with what is wrong
    error = raised.value
    assert error.bad_lines == len(BAD_LINES)
    got = [(p.line, p.doc_id, p.attribute) for p in error.problems]
    want = [(n, doc, attr) for n, (_, doc, attr, _) in enumerate(BAD_LINES.values(), start=2)]
    assert got == want
    for problem, (*_, reason) in zip(error.problems, BAD_LINES.values(), strict=True):
        assert reason in problem.reason
    message = str(error)
    assert message.startswith(f"{path}: {len(BAD_LINES)} bad lines, nothing written")
    assert "line 5, doc 'v-text', version: version attribute 'version' must be an integer number" in message


def test_a_duplicate_id_names_the_first_line(tmp_path: Path) -> None:
    path = _corpus(tmp_path, _good("a"), _good("b"), _good("a"))
    with pytest.raises(CorpusError) as raised:
        check_corpus(SCHEMA, path)
    assert [str(p) for p in raised.value.problems] == ["line 3, doc 'a', doc_id: duplicate of line 1"]


def test_a_failing_accessor_is_narrowed_to_the_attribute_at_fault(tmp_path: Path) -> None:
    # GIVEN two access attributes, only the second of which is bad
    schema = SourceSchema(access_attributes=("groups", "users"))
    path = _corpus(tmp_path, json.dumps({"doc_id": "d", "body": "x", "groups": ["g"], "users": 7}))
    with pytest.raises(CorpusError) as raised:
        check_corpus(schema, path)
    assert [p.attribute for p in raised.value.problems] == ["users"]


def test_nothing_is_written_when_any_line_is_bad(tmp_path: Path) -> None:
    # GIVEN 50 good lines and one bad version on the last line (the old load wrote the first 50)
    path = _corpus(tmp_path, *[_good(f"d{i}") for i in range(50)], _good("late", version="x"))
    table = RecordingTable()
    with pytest.raises(CorpusError, match="line 51, doc 'late', version"):
        SourceApp(table, SCHEMA).load(path)
    assert table.puts == []


def test_a_good_corpus_is_written_with_defaults_and_first_versions(tmp_path: Path) -> None:
    path = _corpus(tmp_path, _good("a"), json.dumps({"doc_id": "b", "body": "numbered", "version": 7}))
    table = RecordingTable()
    assert SourceApp(table, SCHEMA).load(path, defaults={"acl": ["staff"]}) == 2
    first, second = table.puts
    assert (first["doc_id"], first["version"], first["acl"]) == ("a", 1, ["public"])
    assert (second["doc_id"], second["version"], second["acl"]) == ("b", 7, ["staff"])
    assert "updated_at" in first


def test_a_numeric_id_is_refused_like_any_wrong_type(tmp_path: Path) -> None:
    # The id's type rule is the schema's (strict attribute types, one place): ids are strings.
    path = _corpus(tmp_path, json.dumps({"doc_id": 42, "body": "numbered", "version": 7}))
    with pytest.raises(CorpusError, match="must be a string"):
        SourceApp(RecordingTable(), SCHEMA).load(path)


def test_the_message_is_capped_but_every_bad_line_is_counted(tmp_path: Path) -> None:
    path = _corpus(tmp_path, *[_good(f"d{i}", version="bad") for i in range(SHOWN_PROBLEMS + 15)])
    with pytest.raises(CorpusError) as raised:
        check_corpus(SCHEMA, path)
    message = str(raised.value)
    assert raised.value.bad_lines == SHOWN_PROBLEMS + 15 == len(raised.value.problems)
    assert message.count("\n  line ") == SHOWN_PROBLEMS
    assert message.endswith("... and 15 more (--json lists up to 1000)")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["good", *BAD_LINES]), min_size=1, max_size=30))
def test_reported_lines_are_exactly_the_bad_ones(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[str]
) -> None:
    # Oracle: the line numbers where a bad line was placed (ids made unique per line).
    lines = [
        _good(f"g{n}") if kind == "good" else BAD_LINES[kind][0].replace(f'"{BAD_LINES[kind][1]}"', f'"b{n}"')
        for n, kind in enumerate(kinds, start=1)
    ]
    path = _corpus(tmp_path_factory.mktemp("c"), *lines)
    bad = [n for n, kind in enumerate(kinds, start=1) if kind != "good"]
    if not bad:
        assert len(check_corpus(SCHEMA, path)) == len(kinds)
        return
    with pytest.raises(CorpusError) as raised:
        check_corpus(SCHEMA, path)
    assert sorted({p.line for p in raised.value.problems}) == bad
