"""`dynembed load` checks the whole corpus before writing anything: every bad line is reported with
its line number, doc id, attribute and reason, and a corpus with any bad line writes nothing."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynembed.core.errors import ConfigError, MalformedRecordError
from dynembed.core.schema import SourceSchema
from dynembed_ops.source_app import SHOWN_PROBLEMS, CorpusError, SourceApp, check_corpus, document_for

pytestmark = pytest.mark.unit

SCHEMA = SourceSchema(metadata_attributes=("category",))


@dataclass
class RecordingTable:
    """The part of a boto3 Table that ``SourceApp`` uses, remembering every put; ``items`` are
    what the table already holds."""

    puts: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    name: str = "source"

    @property
    def meta(self) -> Any:
        return SimpleNamespace(client=self)

    @contextmanager
    def batch_writer(self) -> Any:
        yield self

    def put_item(self, Item: dict[str, Any]) -> None:  # boto3 names it Item
        self.puts.append(Item)
        self.items[Item["doc_id"]] = Item

    def get_item(self, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        item = self.items.get(Key["doc_id"])
        return {"Item": item} if item is not None else {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        # The resource's client: plain keys in, plain items out (it serializes for us).
        (request,) = RequestItems.values()
        assert len(request["Keys"]) <= 100
        found = [self.items[key["doc_id"]] for key in request["Keys"] if key["doc_id"] in self.items]
        return {"Responses": {self.name: [dict(i, version=Decimal(i["version"])) for i in found]}}


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


def test_reloading_a_corpus_bumps_the_versions_of_docs_already_in_the_table(tmp_path: Path) -> None:
    # GIVEN docs already in the table (one at version 5), and a corpus of them without versions
    table = RecordingTable(items={"a": {"doc_id": "a", "version": 5, "body": "old"}})
    table.items.update({f"old{i}": {"doc_id": f"old{i}", "version": 1, "body": "x"} for i in range(150)})
    lines = [_good("a"), _good("new"), json.dumps({"doc_id": "b", "body": "numbered", "version": 7})]
    path = _corpus(tmp_path, *lines, *[_good(f"old{i}") for i in range(150)])
    # WHEN it is loaded again (the old load wrote version 1 over each: the version went back or
    # stayed, so every doc whose ACL changed was hidden until its next change)
    SourceApp(table, SCHEMA).load(path)
    versions = {item["doc_id"]: item["version"] for item in table.puts}
    # THEN a doc already there gets its version + 1, a new one 1, and an explicit version stays
    assert (versions["a"], versions["new"], versions["b"]) == (6, 1, 7)
    assert {versions[f"old{i}"] for i in range(150)} == {2}


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


EXAMPLE = SourceSchema(
    access_attributes=("acl_groups", "acl_users"),
    tenant_attribute="tenant",
    metadata_attributes=("category",),
)


def test_put_writes_the_attributes_the_schema_reads() -> None:
    # `dynembed put --acl alice` used to write `acl`, which this schema does not read: the doc
    # was indexed with no principal at all, and alice could not find her own doc.
    table = RecordingTable()
    app = SourceApp(table, EXAMPLE)
    item = app.put(document_for(app.schema, "d1", body="text", title="T", acl=["alice"], tenant="acme"))
    assert {k: item[k] for k in ("doc_id", "title", "body", "acl_groups", "tenant")} == {
        "doc_id": "d1",
        "title": "T",
        "body": "text",
        "acl_groups": ["alice"],
        "tenant": "acme",
    }
    assert "acl" not in item
    assert EXAMPLE.acl_of(item) == ["alice"]


def test_put_maps_the_id_content_and_default_acl_to_the_schemas_names() -> None:
    schema = SourceSchema(
        id_attribute="pk",
        content_attributes=("text",),
        access_attributes=("readers",),
        public_principal="all",
    )
    app = SourceApp(RecordingTable(), schema)
    item = document_for(app.schema, "d1", body="the body", title="ignored title")
    assert (item["pk"], item["text"], item["readers"]) == ("d1", "the body", ["all"])


def test_put_refuses_what_the_schema_cannot_take_naming_the_attribute() -> None:
    table = RecordingTable()
    no_tenant = SourceApp(table, SourceSchema(tenant_attribute=None))
    with pytest.raises(ConfigError, match="no tenant attribute"):
        document_for(no_tenant.schema, "d1", body="x", tenant="acme")
    app = SourceApp(table, EXAMPLE)
    with pytest.raises(MalformedRecordError, match=r"doc 'd1'.*acl_groups.*empty principal"):
        app.put(document_for(app.schema, "d1", body="x", acl=[""]))
    assert table.puts == []


@pytest.mark.parametrize(
    "schema",
    [SCHEMA, EXAMPLE, EXAMPLE.model_copy(update={"tenant_isolation": True})],
    ids=["acl", "groups", "iso"],
)
def test_the_up_banners_example_is_an_item_the_schema_reads(schema: SourceSchema) -> None:
    # The banner printed `"acl":{"SS":["public"]}` whatever the schema: with the example schema
    # the doc was written with no principal the pipeline reads, so the suggested search found nothing.
    from boto3.dynamodb.types import TypeDeserializer

    from dynembed_ops.cli.local import _example_put

    typed, search = _example_put(schema)
    item = {k: TypeDeserializer().deserialize(v) for k, v in json.loads(typed).items()}
    assert schema.problems(item) == []
    assert schema.acl_of(item) == [schema.public_principal]
    assert ("--tenant" in search) == schema.tenant_isolation
