"""`dynembed up --data-dir`: a stack that is stopped, or killed, comes back with its docs and
generations, and its indexes rebuilt from them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from dynembed.core.errors import GenerationNotSearchableError
from dynembed.core.models import ChunkerSpec, GenerationStatus
from dynembed.rebuild import generations
from dynembed_ops.local.stack import LocalStack, free_port
from dynembed_ops.ops import peek_stream_failures
from dynembed_ops.paths import FAQ_CORPUS
from dynembed_ops.source_app import read_jsonl, source_app_for

pytestmark = pytest.mark.e2e


def _corpus(tmp_path: Path, n: int) -> tuple[Path, list[dict[str, Any]]]:
    docs = [doc for _, doc in read_jsonl(FAQ_CORPUS)][:n]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    return path, docs


def _found(svc: Any, text: str, generation: str | None = None) -> dict[str, int]:
    response = svc.search(text, "reader", k=20, generation=generation)
    return {r.doc_id: r.source_version for r in response.results}


def _raw_put(stack: LocalStack, item: dict[str, Any]) -> None:
    assert stack.info is not None
    raw = boto3.client("dynamodb", endpoint_url=stack.info.aws_url, region_name=stack.info.region)
    raw.put_item(TableName=stack.services().settings.source_table, Item=item)


def test_a_stopped_stack_comes_back_with_docs_generations_and_indexes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    corpus, docs = _corpus(tmp_path, 20)
    edited, gone = docs[0]["doc_id"], docs[1]["doc_id"]
    # GIVEN a stack with a data dir: g-a promoted to g-b (g-a standby), a rejected g-r, a rebuild
    # g-c still running; 20 docs loaded, one edited, one deleted, one malformed written by a client
    with LocalStack(data_dir=data) as first:
        svc = first.services()
        svc.bootstrap("hash-256", generation_id="g-a")
        spec = svc.registry.get("g-a").model
        for gen_id in ("g-b", "g-r", "g-c"):
            gen = generations.new_generation(
                spec, ChunkerSpec(target_chars=500), svc.settings.index_prefix, generation_id=gen_id
            )
            generations.create(svc.registry, svc.index, gen)
            svc.registry.update(gen_id, write_target=True)
        app = source_app_for(svc)
        app.load(corpus, defaults={"acl": ["public"]})
        first.drain()
        generations.promote(svc.registry, svc.index, svc.settings.index_alias, "g-b")
        generations.reject(svc.registry, "g-r", "nDCG@10 fell by 0.2")
        app.update(edited, {"body": "Wombats dig burrows with their strong claws."})
        app.delete(gone)
        _raw_put(first, {"doc_id": {"S": "poison"}, "version": {"S": "seven"}, "body": {"S": "x"}})
        first.drain()
        edited_version = int(svc.source.get_item(edited)["version"])
    # WHEN a new stack starts on the same data dir
    with LocalStack(data_dir=data) as second:
        restored = second.restored
        assert restored is not None
        second.drain(drain_held=True)
        svc = second.services()
        # THEN it says what it restored: 19 live docs + the malformed one, four generations
        assert (restored.docs, restored.generations, restored.interrupted) == (20, 4, ["g-c"])
        statuses = {g.id: (g.status, g.write_target) for g in svc.registry.list()}
        assert statuses == {
            "g-a": (GenerationStatus.STANDBY, True),
            "g-b": (GenerationStatus.ACTIVE, True),
            "g-r": (GenerationStatus.FAILED, False),
            "g-c": (GenerationStatus.FAILED, False),
        }
        assert svc.registry.get("g-r").report["rejected_reason"] == "nDCG@10 fell by 0.2"
        assert "Interrupted" in svc.registry.get("g-c").report["failed_reason"]
        # the alias serves g-b again; the edit, not the original, is found; the deleted doc is gone
        assert svc.index.alias_target(svc.settings.index_alias) == svc.registry.get("g-b").index_name
        for generation in (None, "g-a"):
            assert _found(svc, "wombats dig burrows claws", generation).get(edited) == edited_version
            assert gone not in _found(svc, docs[1]["body"][:200], generation)
        assert docs[5]["doc_id"] in _found(svc, docs[5]["body"][:200])
        # the frozen generation stays unsearchable; the malformed item is parked again, with its reason
        with pytest.raises(GenerationNotSearchableError):
            svc.search("wombats", "reader", generation="g-r")
        parked = peek_stream_failures(svc.sqs, svc.settings.stream_failures_queue_url)
        assert [p["doc_id"] for p in parked] == ["poison"]
        totals = svc.audit().totals()
        assert (totals["missing_documents"], totals["stale_documents"], totals["orphaned_vectors"]) == (
            0,
            0,
            0,
        )
        # and the journal was compacted to one line per item, without the restore's echoes
        second.step()
        assert len(second.data.source_journal.read_text().splitlines()) == 20  # type: ignore[union-attr]


# ---- the CLI: kill -9 ----------------------------------------------------------------------------------


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Any]:
    """Runs `dynembed ...` as its own process (as a person would), state dir in tmp_path."""
    env = {**os.environ, "DYNEMBED_STATE_DIR": str(tmp_path / "state"), "POWERTOOLS_LOG_LEVEL": "ERROR"}
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, background: bool = False) -> Any:
        command = [sys.executable, "-m", "dynembed_ops.cli.main", *args]
        if background:
            log = (tmp_path / f"up-{len(started)}.log").open("w")
            process = subprocess.Popen(
                command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True
            )
            started.append(process)
            return process, Path(log.name)
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _wait_until_up(process: subprocess.Popen[str], log: Path, timeout_s: float = 240.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text()
        if "dynembed is up" in text:
            return text
        assert process.poll() is None, text
        time.sleep(0.5)
    raise AssertionError(f"`dynembed up` did not come up:\n{log.read_text()}")


def test_docs_survive_kill_9_of_up_and_are_searchable_after_restart(run_cli: Any, tmp_path: Path) -> None:
    corpus, docs = _corpus(tmp_path, 20)
    up = [
        "up",
        "--port",
        str(free_port()),
        "--opensearch-port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    # GIVEN `up --data-dir`, a corpus loaded through the CLI and a doc written by another client
    process, log = run_cli(*up, background=True)
    assert "state kept in" in _wait_until_up(process, log)
    assert run_cli("load", str(corpus)).returncode == 0
    info = json.loads((tmp_path / "state" / "stack.json").read_text())
    raw = boto3.client("dynamodb", endpoint_url=info["aws_url"], region_name=info["region"])
    raw.put_item(
        TableName="dynembed-source",
        Item={
            "doc_id": {"S": "quokka"},
            "version": {"N": "1"},
            "body": {"S": "Quokkas are small marsupials that smile for photographs."},
            "acl": {"SS": ["public"]},
        },
    )
    deadline = time.monotonic() + 120
    while "quokka" not in run_cli("search", "quokkas marsupials smile", "--as", "reader", "--json").stdout:
        assert time.monotonic() < deadline, "the client's write never became searchable"
        time.sleep(1)
    # WHEN `up` is killed without a chance to clean up, and started again on the same data dir
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process, log = run_cli(*up, background=True)
    text = _wait_until_up(process, log)
    # THEN it says what it restored, and the docs are searchable again, with nothing lost
    assert "restored 21 docs, 1 generation from" in text, text
    found = json.loads(run_cli("search", "quokkas marsupials smile", "--as", "reader", "--json").stdout)
    assert found["results"][0]["doc_id"] == "quokka"
    probe = json.loads(run_cli("search", docs[7]["body"][:200], "--as", "reader", "--json").stdout)
    assert docs[7]["doc_id"] in [r["doc_id"] for r in probe["results"]]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert "stopped" in log.read_text()
