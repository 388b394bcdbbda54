"""On the local stack, through the `dynembed` CLI: `explain DOC_ID` names what is wrong with a
doc (stale content until the pipeline catches up, then current) with its recent decisions;
`search --explain` explains each hit; live searches are sampled and `signals` reports them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dynembed_ops.cli.main import app
from dynembed_ops.local.stack import STATE_DIR_ENV, TELEMETRY_FILE_NAME, LocalStack
from dynembed_ops.source_app import source_app_for

pytestmark = pytest.mark.e2e

DOCS = {
    "kettle": "Descaling a kettle: boil a mix of water and white vinegar, then rinse twice.",
    "bonsai": "Watering a bonsai: soak the pot when the topsoil feels dry, never on a schedule.",
    "chess": "The Sicilian defence answers 1.e4 with c5 and fights for the centre from the side.",
}


@pytest.fixture
def cli(local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs `dynembed ...` against the module's stack, as another terminal would."""
    monkeypatch.chdir(tmp_path)
    state_dir = tmp_path / ".dynembed"
    monkeypatch.setenv(STATE_DIR_ENV, str(state_dir))
    assert local_stack.info is not None
    local_stack.info.save(state_dir)

    def run(*args: str) -> Any:
        # what `dynembed up` writes every second: the handlers' figures and recent decisions
        (state_dir / TELEMETRY_FILE_NAME).write_text(json.dumps(local_stack.services().telemetry.snapshot()))
        result = CliRunner().invoke(app, [*args, "--json"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    return run


def test_explain_names_stale_content_until_the_pipeline_catches_up(local_stack: LocalStack, cli: Any) -> None:
    # GIVEN three docs written through the source table and synced
    app = source_app_for(local_stack.services())
    for doc_id, body in DOCS.items():
        app.put({"doc_id": doc_id, "title": doc_id, "body": body, "acl": ["public"]})
    local_stack.drain()
    assert cli("explain", "kettle")["generations"][0]["verdict"] == "current"
    # WHEN the kettle doc is edited and the stream has not been processed yet
    app.update("kettle", {"body": "Descaling a kettle: citric acid works better than vinegar."})
    explained = cli("explain", "kettle")
    # THEN the serving generation holds stale content, and says so against the source's version
    (view,) = explained["generations"]
    assert (view["verdict"], view["serving"]) == ("stale content", True)
    version = explained["source"]["version"]
    assert view["ledger"]["source_version"] < version
    # WHEN the pipeline catches up
    local_stack.drain()
    explained = cli("explain", "kettle")
    # THEN it is current, and the recent decisions show the content decision and the index write
    assert explained["generations"][0]["verdict"] == "current"
    events = [(e["event"], e["version"]) for e in explained["recent"]]
    assert ("decision content", version) in events and ("indexed", version) in events
    assert all(e["lag_s"] is not None for e in explained["recent"] if e["event"] == "indexed")


def test_access_changed_behind_the_pipeline_is_stale_metadata_or_access(
    local_stack: LocalStack, cli: Any
) -> None:
    app = source_app_for(local_stack.services())
    app.put({"doc_id": "bonsai", "title": "bonsai", "body": DOCS["bonsai"], "acl": ["public"]})
    local_stack.drain()
    app.update("bonsai", {"acl": ["gardeners"]})
    assert cli("explain", "bonsai")["generations"][0]["verdict"] == "stale metadata or access"
    local_stack.drain()
    assert cli("explain", "bonsai")["generations"][0]["verdict"] == "current"


def test_search_explain_and_signals(local_stack: LocalStack, cli: Any) -> None:
    app = source_app_for(local_stack.services())
    app.put({"doc_id": "chess", "title": "chess", "body": DOCS["chess"], "acl": ["public"]})
    local_stack.drain()
    # WHEN searching with --explain
    found = cli("search", "sicilian defence c5", "--as", "public", "--k", "3", "--explain")
    # THEN each hit's doc comes with its explanation
    assert found["results"] and found["results"][0]["doc_id"] == "chess"
    assert {e["doc_id"] for e in found["explain"]} == {r["doc_id"] for r in found["results"]}
    assert all(e["generations"][0]["verdict"] == "current" for e in found["explain"])
    # AND the live search was sampled (every local search is), text hashed
    signals = cli("signals")
    summary = signals["signals"]
    assert summary["samples"] >= 1 and summary["zero_result_rate"] == 0.0
    assert summary["latency_ms"]["p95"] > 0
    assert summary["weak_retrieval_rate"] is None  # the bootstrapped generation is not calibrated
