"""The HTML report: sections from whatever the report holds, "not measured" for the rest, user
text escaped, nothing referenced outside the file, SVG that parses. (In a real browser:
tests/e2e/test_report_html_browser.py.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import dynembed_ops.cli.generations
from dynembed.core.errors import DynembedError
from dynembed.quality.evaluation import GatePolicy, GoldenSet, compare, evaluate_run, gate, latency_summary
from dynembed.quality.html import (
    CANARY_SECTIONS,
    MAX_QUERY_BARS,
    REBUILD_SECTIONS,
    render_canary_report,
    render_report,
)
from dynembed.quality.report import Coverage, EmbeddingUsage, EvaluationReport, GenerationSummary
from dynembed_ops.cli.main import app

pytestmark = pytest.mark.unit

HOSTILE = "<script>alert(1)</script>"
OPTIONAL = {
    "canary": {
        "generation_id": "g-b",
        "queries": 40,
        "metrics": {"ndcg": 0.612, "recall": 0.7, "mrr": 0.55},
        "weak_retrieval_rate": 0.125,
        "weak_threshold": 0.3,
        "least_covered_queries": [HOSTILE, {"query": "sparse topic", "score": 0.19, "hits": 2}],
    },
    "shadow": {
        "queries": 250,
        "overlap@10": 0.643,
        "rbo": 0.701,
        "active_scores": [0.2, 0.4, 0.6],
        "candidate_scores": [0.5, 0.7, 0.9],
        "disagreements": [{"query": HOSTILE, "overlap": 0.1}, {"query": "fine", "overlap": 0.4}],
    },
    "freshness": {
        "p50": 1.25,
        "p95": 7.5,
        "p99": 30.0,
        "target_p95_s": 300.0,
        "sentinel_freshness_s": 2.0,
        "sentinel_delete_s": 0.4,
    },
    "score_histograms": {
        "candidate g-b": [0.1, 0.5, 0.5, 0.9],
        "active g-a": {"edges": [0, 0.5, 1], "counts": [3, 1]},
    },
}


def stored_report(*, with_baseline: bool = True, text: str = HOSTILE) -> dict[str, Any]:
    """The rebuild report as the evaluate step stores it, from the real report code."""
    golden = GoldenSet(
        queries={"q1": text, "q2": "how do I sort a list", "q3": "tie"},
        qrels={"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}},
        name="faq",
    )
    candidate = evaluate_run({"q1": ["a"], "q2": ["x", "b"], "q3": ["x", "x2", "c"]}, golden, k=10)
    baseline = evaluate_run({"q1": ["x", "a"], "q2": ["b"], "q3": ["x", "x2", "c"]}, golden, k=10)
    comparison = compare(candidate, baseline if with_baseline else None)
    policy = GatePolicy(min_ndcg=0.5)
    probes = {"deleted_docs_absent": True, HOSTILE: False}
    record = EvaluationReport.build(
        golden=golden,
        comparison=comparison,
        decision=gate(comparison, probes, policy),
        policy=policy,
        candidate=GenerationSummary(generation_id="g-b", model_id="minilm", chunker_version="c2"),
        baseline=GenerationSummary(generation_id="g-a", model_id="static") if with_baseline else None,
        probes=probes,
        coverage=Coverage(docs_indexed=1498, docs_in_source=1500),
        latency_ms=latency_summary([10.0, 20.0, 30.0]),
        latency_samples=3,
        embeddings=EmbeddingUsage(reused=1200, computed=300),
    ).model_dump(mode="json")
    record["backfill"] = {"docs": 1500, "runs": 2, "failed_docs": []}
    return record


def sections(page: str) -> dict[str, bool]:
    """section name -> measured?"""
    found = re.findall(r'<section id="[^"]+" data-section="([^"]+)"( class="not-measured")?>', page)
    return {name: not missing for name, missing in found}


def charts(page: str) -> list[str]:
    return re.findall(r'<svg class="chart" data-chart="([^"]+)"', page)


def test_a_rebuild_report_shows_its_sections_and_says_not_measured_for_the_rest() -> None:
    page = render_report(stored_report(), title="Generation g-b")
    assert sections(page) == {
        "gate": True,
        "metrics": True,
        "per_query": True,
        "histograms": True,
        "freshness": False,
        "shadow": False,
        "canary": False,
        "probes": True,
        "index": True,
    }
    assert charts(page) == ["metrics", "per-query", "ndcg-histogram"]
    assert "not measured: no shadow run in this report" in page
    assert "retrieval score histograms: not measured" in page


def test_the_figures_are_on_the_page() -> None:
    report = stored_report()
    page = render_report(report, title="Generation g-b")
    for metric in ("ndcg", "recall", "mrr"):
        assert f"{report['candidate_metrics'][metric]:.3f}" in page
        assert f"{report['baseline_metrics'][metric]:.3f}" in page
        assert f"{report['deltas'][metric]:+.3f}" in page
    assert "nDCG@10" in page and "MRR@10" in page
    assert "1,498 of 1,500 source docs indexed (99.9%)" in page
    assert "p50 20.0 ms, p95 29.0 ms" in page
    assert "1,200 reused, 300 computed (80.0% reused)" in page
    assert "1,500 docs in 2 runs" in page
    assert f"{report['wins']}</strong> wins" in page
    assert "gate failed" in page  # the hostile probe failed
    assert "min nDCG 0.500" in page


def test_every_optional_section_is_drawn_when_present() -> None:
    page = render_report({**stored_report(), **OPTIONAL}, title="Generation g-b")
    assert all(sections(page).values()), sections(page)
    assert charts(page) == [
        "metrics",
        "per-query",
        "ndcg-histogram",
        "score-histogram",  # the raw list
        "score-histogram",  # the given edges/counts
        "freshness",
        "shadow-overlap",
        "shadow-disagreements",
        "shadow-scores",
        "canary-weak",
    ]
    for shown in (
        "0.612",
        "12.5%",
        "0.643",
        "0.701",
        "7.5 s",
        "1.2 s",
        "30.0 s",
        "400 ms",
        "target p95 5.0 min",
    ):
        assert shown in page, shown
    assert "canary g-b" in page  # the canary's metrics stand beside the candidate's and the active's


def test_user_text_is_escaped_everywhere() -> None:
    report = {**stored_report(text=HOSTILE), **OPTIONAL}
    report["gate_reasons"] = [HOSTILE]
    report["candidate"]["generation_id"] = HOSTILE
    page = render_report(report, title=HOSTILE)
    assert "<script" not in page
    assert "alert(1)" in page  # shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_values_that_land_in_attributes_cannot_break_out() -> None:
    report = stored_report()
    report["per_query"][0]["outcome"] = '" onmouseover="alert(1)'
    page = render_report(report, title="g-b")
    assert 'onmouseover="' not in page
    assert "&quot; onmouseover=&quot;alert(1)" in page


def test_the_page_references_nothing_outside_itself() -> None:
    page = render_report({**stored_report(), **OPTIONAL}, title="g-b")
    for needle in ("http://", "https://", "src=", "<link", "<script", "url(", "@import", "href=", "//cdn"):
        assert needle not in page.lower(), needle
    assert "default-src 'none'" in page  # and the browser is told so


def test_every_chart_is_well_formed_svg() -> None:
    page = render_report({**stored_report(), **OPTIONAL}, title="g-b")
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == 10
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.get("class") == "chart"
        assert root.get("viewBox")
        assert root.findall(".//rect"), root.get("data-chart")


def test_an_empty_report_is_all_not_measured() -> None:
    page = render_report({}, title="Generation g-new")
    assert sections(page) == dict.fromkeys(REBUILD_SECTIONS, False)
    assert charts(page) == []
    assert page.count("not measured") == len(REBUILD_SECTIONS)


def test_a_report_without_baseline_draws_the_candidate_alone() -> None:
    page = render_report(stored_report(with_baseline=False), title="first")
    assert "No active generation to compare with" in page
    assert "no active generation to compare with" in page  # the header says it too
    assert charts(page) == ["metrics", "per-query", "ndcg-histogram"]
    assert "candidate g-b" in page and "active g-a" not in page


def test_a_rejected_generation_shows_why_without_an_evaluation() -> None:
    page = render_report({"rejected_reason": f"declined by {HOSTILE}"}, title="g-x")
    assert sections(page)["gate"] is True
    assert "rejected reason:</strong> declined by &lt;script&gt;" in page


def test_values_of_the_wrong_type_are_reported_not_fatal() -> None:
    report = {
        **stored_report(),
        "shadow": "oops",
        "freshness": [1, 2],
        "canary": {"weak_retrieval_rate": "high", "metrics": {"ndcg": float("nan")}},
        "score_histograms": {"g-a": "nope"},
        "candidate_metrics": {"ndcg": True, "recall": None, "mrr": float("inf")},
    }
    page = render_report(report, title="g-b")
    assert "the report&#x27;s &#x27;shadow&#x27; is not an object" in page
    assert "the report&#x27;s &#x27;freshness&#x27; is not an object" in page
    assert "the canary object has no figures" in page
    assert "unreadable histograms (not a score list nor edges/counts): g-a" in page
    body = page.split("</style>", 1)[1]
    assert "nan" not in body.lower() and "inf" not in body.lower()


def test_unreadable_per_query_rows_are_said_so() -> None:
    page = render_report({**stored_report(), "per_query": "rows"}, title="g-b")
    assert "the report&#x27;s &#x27;per_query&#x27; is not a list" in page


def test_a_long_per_query_list_draws_the_worst_and_the_best_and_tables_them_all() -> None:
    rows = [
        {
            "query_id": f"q{i:03d}",
            "text": f"query {i}",
            "candidate_ndcg": 0.5,
            "baseline_ndcg": 0.5 - (i - 50) / 100,
            "delta": (i - 50) / 100,
            "outcome": "win" if i > 50 else "loss" if i < 50 else "tie",
        }
        for i in range(100)
    ]
    page = render_report({"k": 10, "per_query": rows, "wins": 49, "losses": 50, "ties": 1}, title="many")
    chart = re.search(r'<svg class="chart" data-chart="per-query".*?</svg>', page, flags=re.S)
    assert chart is not None
    assert chart.group(0).count("<rect") == MAX_QUERY_BARS
    assert f"{100 - MAX_QUERY_BARS} queries in between not drawn" in chart.group(0)
    assert "All 100 queries" in page and page.count("<tr>") >= 100


def test_trimmed_registry_copies_say_so() -> None:
    page = render_report({**stored_report(), "per_query_trimmed": {"kept": 2, "total": 9}}, title="g-b")
    assert "keeps 2 of 9 queries" in page


def test_histogram_counts_put_the_top_edge_in_the_last_bin() -> None:
    page = render_report({"score_histograms": {"g": [0.0, 0.0, 1.0]}}, title="h")
    tips = re.findall(r"<title>g: (\d+) in \[", page)
    assert sorted(int(t) for t in tips if t != "0") == [1, 2]


def test_the_canary_page_puts_its_sections_first_and_drops_the_gate() -> None:
    page = render_canary_report(OPTIONAL)
    assert list(sections(page)) == list(CANARY_SECTIONS)
    assert "<title>Canary report</title>" in page
    assert "metrics" in charts(page) and "canary-weak" in charts(page)


def test_a_canary_alone_labels_its_metrics_with_its_own_k() -> None:
    page = render_canary_report({"canary": {**OPTIONAL["canary"], "k": 5}})
    assert "nDCG@5" in page and "0.612" in page


def test_the_same_report_renders_the_same_page() -> None:
    report = {**stored_report(), **OPTIONAL}
    assert render_report(report, title="t") == render_report(report, title="t")


def test_it_refuses_what_is_not_a_report() -> None:
    with pytest.raises(DynembedError, match="JSON object"):
        render_report([1, 2], title="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown report sections"):
        render_report({}, title="x", sections=("gate", "charts"))


# ---- the CLI: dynembed generations --show ID --html OUT


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    gens: dict[str, Any] = {}

    def get(gen_id: str) -> Any:
        return gens[gen_id]

    services = SimpleNamespace(registry=SimpleNamespace(get=get))
    monkeypatch.setattr(dynembed_ops.cli.generations, "_services", lambda: services)
    return gens


def test_generations_show_html_writes_the_page(registry: dict[str, Any], tmp_path: Path) -> None:
    registry["g-b"] = SimpleNamespace(
        id="g-b", status=SimpleNamespace(value="standby"), report=stored_report()
    )
    out = tmp_path / "reports" / "g-b.html"
    result = CliRunner().invoke(app, ["generations", "--show", "g-b", "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<title>Generation g-b (standby)</title>" in page
    assert charts(page) == ["metrics", "per-query", "ndcg-histogram"]
    assert "g-b.html" in result.output


def test_generations_show_html_into_a_folder_and_as_json(registry: dict[str, Any], tmp_path: Path) -> None:
    registry["g-new"] = SimpleNamespace(id="g-new", status=SimpleNamespace(value="building"), report=None)
    result = CliRunner().invoke(app, ["generations", "--show", "g-new", "--html", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"html": "' in result.output
    page = (tmp_path / "g-new.html").read_text(encoding="utf-8")
    assert page.count("not measured") == len(REBUILD_SECTIONS)


def test_html_without_show_is_refused(registry: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generations", "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 1
    assert "--html goes with --show" in result.output
