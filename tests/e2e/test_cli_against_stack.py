"""The CLI against a running local stack, where a person meets it: a doc that is not there, a
corpus with bad lines, parked stream records, a frozen generation, another working folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from dynembed.core.models import ChunkerSpec
from dynembed.rebuild import generations
from dynembed_ops.cli.main import app
from dynembed_ops.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        stack.services().bootstrap("hash-256", generation_id="g-cli")
        yield stack


@pytest.fixture
def cli(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """Commands run from a folder of their own, finding the stack through the environment."""
    assert stack.info is not None
    state = tmp_path / "state"
    stack.info.save(state)
    monkeypatch.setenv("DYNEMBED_STATE_DIR", str(state))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def _source_ids(stack: LocalStack) -> set[str]:
    table = stack.services().source.table
    return {item["doc_id"] for item in table.scan(ConsistentRead=True)["Items"]}


def _failed(result: Any, *contains: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for text in contains:
        assert text in result.output
    return str(result.output)


def test_delete_and_reprocess_of_an_unknown_doc_say_so(cli: CliRunner, stack: LocalStack) -> None:
    # GIVEN a doc that exists and one that does not
    assert cli.invoke(app, ["put", "known", "--body", "here I am"]).exit_code == 0
    stack.drain()
    # WHEN the unknown one is deleted or reprocessed, THEN each says so and exits 1
    _failed(cli.invoke(app, ["delete", "nope"]), "no doc 'nope' in the source table")
    _failed(cli.invoke(app, ["reprocess", "nope"]), "no doc 'nope' in the source table", "audit --repair")
    # and the known one still works
    assert cli.invoke(app, ["reprocess", "known"]).exit_code == 0
    deleted = cli.invoke(app, ["delete", "known"])
    assert deleted.exit_code == 0 and "deleted known" in deleted.output
    assert "known" not in _source_ids(stack)


def test_load_with_bad_lines_lists_them_all_and_writes_nothing(
    cli: CliRunner, stack: LocalStack, tmp_path: Path
) -> None:
    # GIVEN 30 good lines with a bad version on line 12 and an ACL that is a number on line 29
    lines = [{"doc_id": f"c{n}", "title": f"T{n}", "body": f"body {n}"} for n in range(1, 31)]
    lines[11]["version"] = "twelve"
    lines[28]["acl"] = 29
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    before = _source_ids(stack)
    # WHEN it is loaded
    result = cli.invoke(app, ["load", str(corpus)])
    # THEN both lines are named, and not one doc was written
    _failed(result, "2 bad lines, nothing written", "line 12, doc 'c12', version", "line 29, doc 'c29', acl")
    assert _source_ids(stack) == before
    as_json = cli.invoke(app, ["load", str(corpus), "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["bad_lines"] == 2 and [p["line"] for p in report["problems"]] == [12, 29]


def test_status_and_dlq_show_parked_stream_records_with_their_reasons(
    cli: CliRunner, stack: LocalStack
) -> None:
    # GIVEN another client writes an item whose version is not a number: classify parks it
    assert stack.info is not None
    raw = boto3.client("dynamodb", endpoint_url=stack.info.aws_url, region_name=stack.info.region)
    raw.put_item(
        TableName=stack.services().settings.source_table,
        Item={"doc_id": {"S": "poison"}, "version": {"S": "seven"}, "body": {"S": "x"}},
    )
    stack.drain()
    # WHEN status and dlq are asked, twice (nothing is consumed)
    for _ in range(2):
        status = cli.invoke(app, ["status", "--json"])
        assert status.exit_code == 0, status.output
        data = json.loads(status.stdout)
        dlq = json.loads(cli.invoke(app, ["dlq", "--json"]).stdout)
        # THEN both carry the parked record, its doc and its reason, beside the jobs DLQ
        assert data["stream_failures"]["visible"] == 1
        assert [(r["doc_id"], r["kind"]) for r in data["stream_failure_reasons"]] == [("poison", "record")]
        assert "version" in data["stream_failure_reasons"][0]["reason"]
        assert any(a["alarm"] == "StreamFailuresNotEmpty" and a["firing"] for a in data["alarms"])
        assert [f["doc_id"] for f in dlq["stream_failures"]] == ["poison"] and dlq["jobs"] == []
    table = cli.invoke(app, ["status"]).output
    assert "parked stream records" in table and "doc poison" in table
    assert "poison" in cli.invoke(app, ["dlq"]).output


def test_search_of_a_rejected_generation_is_one_line_and_exit_1(cli: CliRunner, stack: LocalStack) -> None:
    # GIVEN a candidate that was backfilled as a write target, then rejected
    svc = stack.services()
    candidate = generations.new_generation(
        svc.embedder_for(svc.registry.get("g-cli").model).spec,
        ChunkerSpec(target_chars=400),
        svc.settings.index_prefix,
        generation_id="g-rejected",
    )
    generations.create(svc.registry, svc.index, candidate)
    svc.registry.update("g-rejected", write_target=True)
    assert (
        cli.invoke(app, ["put", "memo", "--body", "the rejected candidate still indexes this"]).exit_code == 0
    )
    stack.drain()
    ok = cli.invoke(app, ["search", "rejected candidate", "--as", "public", "--generation", "g-rejected"])
    assert ok.exit_code == 0 and "memo" in ok.output
    generations.reject(svc.registry, "g-rejected", "nDCG@10 fell")
    # WHEN it is searched by name
    result = cli.invoke(app, ["search", "rejected candidate", "--as", "public", "--generation", "g-rejected"])
    # THEN one line names the generation, its status and where to look instead
    output = _failed(
        result, "g-rejected was rejected (status failed)", "dynembed generations --show g-rejected"
    )
    assert output.strip().count("\n") == 0
    assert cli.invoke(app, ["search", "rejected", "--as", "public", "--generation", "g-cli"]).exit_code == 0


def test_commands_find_the_stack_from_a_folder_below_it(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN `up` wrote its state at the project's root; WHEN a command runs two folders below
    assert stack.info is not None
    stack.info.save(tmp_path / ".dynembed")
    below = tmp_path / "docs" / "drafts"
    below.mkdir(parents=True)
    monkeypatch.delenv("DYNEMBED_STATE_DIR", raising=False)
    monkeypatch.chdir(below)
    # THEN it finds the stack
    result = CliRunner().invoke(app, ["generations", "--json"])
    assert result.exit_code == 0, result.output
    assert "g-cli" in [g["id"] for g in json.loads(result.stdout)]


def test_dlq_and_audit_say_how_many_there_are_beyond_what_they_list(
    cli: CliRunner, stack: LocalStack
) -> None:
    # GIVEN two more malformed items (the listing used to be titled with the number it showed,
    # capped at 100, and the audit table never mentioned malformed items: only --json did)
    assert stack.info is not None
    raw = boto3.client("dynamodb", endpoint_url=stack.info.aws_url, region_name=stack.info.region)
    for name in ("poison-map", "poison-num"):
        raw.put_item(
            TableName=stack.services().settings.source_table,
            Item={"doc_id": {"S": name}, "version": {"N": "1"}, "body": {"S": "x"}, "acl": {"N": "7"}},
        )
    stack.drain()
    total = json.loads(cli.invoke(app, ["status", "--json"]).stdout)["stream_failures"]["visible"]
    assert total >= 2
    # WHEN dlq lists one of them
    listed = cli.invoke(app, ["dlq", "--limit", "1"])
    assert listed.exit_code == 0, listed.output
    # THEN its title says how many there are; --json says so too
    assert f"1 of {total} parked stream records" in listed.output
    data = json.loads(cli.invoke(app, ["dlq", "--limit", "1", "--json"]).stdout)
    assert len(data["stream_failures"]) == 1 and data["stream_failures_total"] == total
    # AND the audit's table names the malformed items with a reason each
    audit = cli.invoke(app, ["audit"])
    assert audit.exit_code == 0, audit.output
    assert "malformed source items" in audit.output and "poison-map" in audit.output
    assert "access attribute 'acl'" in audit.output
