"""The monthly cost model (dynembed.cost.model) over the committed measured counts: it scales
with the workload, charges embedding only for content, re-derives batching for the arrival
rate, and the OpenSearch Ingestion comparison re-embeds whole docs."""

from __future__ import annotations

from typing import Any

import pytest

from dynembed.core.errors import ConfigError
from dynembed.cost.model import KINDS, Workload, load_counts, monthly_cost, parse_mix
from dynembed.cost.prices import PriceTable
from dynembed_ops import paths

pytestmark = pytest.mark.unit

COUNTS = paths.REPO_ROOT / "bench" / "results" / "cost_counts.json"


@pytest.fixture(scope="module")
def counts() -> dict[str, Any]:
    return load_counts(COUNTS)


def cost(counts: dict[str, Any], **workload: Any) -> Any:
    defaults: dict[str, Any] = {
        "docs": 1_000_000,
        "changes_per_day": 110_000,
        "mix": parse_mix("content=10,metadata=50,access=50"),
    }
    return monthly_cost(
        Workload(model="bedrock-titan-v2-1024", **{**defaults, **workload}), counts, PriceTable()
    )


def line(result: Any, prefix: str) -> Any:
    return next(x for x in result.variable + result.fixed if x.item.startswith(prefix))


def test_the_committed_counts_cover_every_kind_and_a_rebuild(counts: dict[str, Any]) -> None:
    assert set(counts["per_change"]) == set(KINDS)
    # Metadata, access and delete changes embed nothing (I5); a content edit a chunk or two.
    for kind in ("metadata", "access", "delete"):
        assert counts["per_change"][kind]["units"].get("embedding_texts", 0) == 0
    assert 0 < counts["per_change"]["content"]["units"]["embedding_texts"] < 3
    assert counts["per_rebuilt_item"]["units"]["embedding_texts"] > 1


def test_mix_shares_are_normalised_and_bad_kinds_named() -> None:
    assert parse_mix("content=1,metadata=3") == {
        "content": 0.25,
        "metadata": 0.75,
        "access": 0.0,
        "delete": 0.0,
    }
    with pytest.raises(ConfigError, match="unknown change kind 'edits'"):
        parse_mix("edits=1")
    with pytest.raises(ConfigError, match="at least one positive share"):
        parse_mix("content=0")


def test_variable_costs_scale_with_changes_and_fixed_costs_with_docs(counts: dict[str, Any]) -> None:
    base, double = cost(counts), cost(counts, changes_per_day=220_000)
    for item in ("DynamoDB reads", "DynamoDB writes", "embedding"):
        assert line(double, item).quantity == pytest.approx(2 * line(base, item).quantity)
    # Twice the rate fills batches better: fewer than twice the invocations.
    assert (
        line(base, "Lambda invocations").quantity
        < line(double, "Lambda invocations").quantity
        < 2 * line(base, "Lambda invocations").quantity
    )
    assert base.fixed == double.fixed
    bigger = cost(counts, docs=10_000_000)
    assert bigger.opensearch_nodes > base.opensearch_nodes >= 2


def test_only_content_changes_embed_and_opensearch_ingestion_re_embeds_whole_docs(
    counts: dict[str, Any],
) -> None:
    patches = cost(counts, mix=parse_mix("metadata=1,access=1"))
    assert patches.embedding_tokens_per_month == 0
    # The whole doc, again, on every metadata or access change, for the same workload.
    doc_tokens = counts["corpus"]["avg_doc_chars"] / 4
    assert patches.osi_embedding_tokens_per_month == pytest.approx(patches.changes_per_month * doc_tokens)
    assert patches.osi_total_usd > 0 and patches.unverified_prices


def test_a_rebuild_costs_its_embedding_and_its_requests(counts: dict[str, Any]) -> None:
    result = cost(counts, rebuilds_per_month=1)
    per_item = counts["per_rebuilt_item"]["units"]
    embedding = 1_000_000 * per_item["embedding_chars"] / 4 * 0.02 / 1e6
    assert result.rebuild_once_usd > embedding
    assert line(result, "rebuilds").usd == pytest.approx(result.rebuild_once_usd, rel=0.01)


def test_the_cost_command_prints_json_and_names_a_bad_mix() -> None:
    import json

    from typer.testing import CliRunner

    from dynembed_ops.cli.main import app

    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "cost",
            "--docs",
            "1000000",
            "--changes-per-day",
            "110000",
            "--mix",
            "content=10,metadata=50,access=50",
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.output)
    assert result["total_usd"] > 0 and result["osi_total_usd"] > 0 and result["opensearch_nodes"] >= 2
    bad = runner.invoke(app, ["cost", "--docs", "10", "--changes-per-day", "1", "--mix", "edits=1"])
    assert (
        bad.exit_code == 1 and "unknown change kind 'edits'" in bad.output and "Traceback" not in bad.output
    )
