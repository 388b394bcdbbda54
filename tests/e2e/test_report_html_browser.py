"""The HTML reports in a real headless Chromium (the Debian package): they load without a
console error or a request beyond the file itself, their charts are drawn, a screenshot is
written. The rebuild report is built by the real evaluation code from the shipped golden set."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from dynembed.quality.evaluation import compare, evaluate_run, gate, latency_summary, load_golden_set
from dynembed.quality.html import render_canary_report, render_report
from dynembed.quality.report import Coverage, EmbeddingUsage, EvaluationReport, GatePolicy, GenerationSummary
from dynembed_ops.paths import FAQ_QRELS, FAQ_QUERIES, REPO_ROOT
from tests.browser import Browser, Page

pytestmark = pytest.mark.e2e

REBUILD_CHARTS = {
    "metrics",
    "per-query",
    "ndcg-histogram",
    "score-histogram",
    "freshness",
    "shadow-overlap",
    "shadow-disagreements",
    "shadow-scores",
    "canary-weak",
}
HOSTILE_QUERY = "<script>console.error('xss')</script><img src=x onerror=alert(1)>"
"""If it were not escaped, the page's CSP would block it and log the error the test looks for."""


def _run(golden: Any, rng: random.Random, hit_rate: float) -> dict[str, list[str]]:
    """A doc-level run: the relevant doc at a random rank (or missing), among filler docs."""
    run = {}
    for query_id in golden.judged_query_ids:
        relevant = next(iter(golden.qrels[query_id]))
        ranked = [f"filler-{query_id}-{i}" for i in range(10)]
        if rng.random() < hit_rate:
            ranked.insert(min(int(rng.expovariate(0.6)), 9), relevant)
        run[query_id] = ranked[:10]
    return run


def realistic_report() -> dict[str, Any]:
    """What a rebuild stores on its generation, plus the optional sections drawn from samples."""
    rng = random.Random(11)
    golden = load_golden_set(FAQ_QUERIES, FAQ_QRELS, name="python-faq")
    baseline = evaluate_run(_run(golden, rng, 0.7), golden, k=10)
    candidate = evaluate_run(_run(golden, rng, 0.85), golden, k=10)
    comparison = compare(candidate, baseline)
    policy = GatePolicy(min_ndcg=0.4, min_recall=0.5, min_mrr=0.3)
    probes = {
        "deleted_docs_absent": True,
        "newest_edits_retrievable": True,
        "restricted_principal_public_only": True,
        "coverage_complete": True,
    }
    report = EvaluationReport.build(
        golden=golden,
        comparison=comparison,
        decision=gate(comparison, probes, policy),
        policy=policy,
        candidate=GenerationSummary(
            generation_id="g-minilm-c3", model_id="all-MiniLM-L6-v2", chunker_version="c3"
        ),
        baseline=GenerationSummary(
            generation_id="g-static-c2", model_id="static-retrieval", chunker_version="c2"
        ),
        probes=probes,
        coverage=Coverage(docs_indexed=1500, docs_in_source=1500),
        latency_ms=latency_summary([rng.lognormvariate(2.3, 0.4) for _ in golden.judged_query_ids]),
        latency_samples=len(golden.judged_query_ids),
        embeddings=EmbeddingUsage(reused=2140, computed=3912),
    ).model_dump(mode="json")
    report["created_at"] = 1_764_578_400.0
    report["probe_details"] = {"newest_edits_retrievable": {"probed": 5, "found": 5}}
    report["backfill"] = {"docs": 1500, "runs": 1, "failed_docs": []}
    queries = list(golden.queries.values())
    report["score_histograms"] = {
        "active g-static-c2": [rng.betavariate(5, 4) for _ in range(400)],
        "candidate g-minilm-c3": [rng.betavariate(7, 3) for _ in range(400)],
    }
    report["freshness"] = {
        "p50": 1.8,
        "p90": 4.2,
        "p95": 6.9,
        "p99": 21.5,
        "max": 48.0,
        "samples": 3120,
        "target_p95_s": 300.0,
        "sentinel_freshness_s": 2.4,
        "sentinel_delete_s": 3.1,
    }
    report["shadow"] = {
        "generation_id": "g-minilm-c3",
        "queries": 860,
        "overlap@10": 0.62,
        "rbo": 0.71,
        "active_scores": [rng.betavariate(5, 4) for _ in range(300)],
        "candidate_scores": [rng.betavariate(7, 3) for _ in range(300)],
        "disagreements": [{"query": HOSTILE_QUERY, "overlap": 0.0}]
        + [{"query": q, "overlap": round(rng.random() * 0.4, 2)} for q in queries[:11]],
    }
    report["canary"] = {
        "generation_id": "g-minilm-c3",
        "k": 10,
        "queries": 120,
        "metrics": {"ndcg": 0.71, "recall": 0.84, "mrr": 0.66},
        "weak_retrieval_rate": 0.075,
        "weak_threshold": 0.35,
        "least_covered_queries": [
            {"query": q, "score": 0.21 + i / 100, "hits": 3 + i} for i, q in enumerate(queries[20:25])
        ],
    }
    return report


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def _charts(page: Page) -> list[dict[str, Any]]:
    charts: list[dict[str, Any]] = page.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => {"
        " const box = s.getBoundingClientRect();"
        " return {name: s.dataset.chart, width: box.width, height: box.height,"
        " marks: s.querySelectorAll('rect').length}; })"
    )
    return charts


def _keep(screenshot: Path, name: str) -> None:
    """A copy in out/ (git-ignored) for people to look at after the run."""
    out = REPO_ROOT / "out"
    out.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, out / name)


def _assert_clean(page: Page, url: str) -> None:
    """No error, no request but the page itself, no script (call while the browser is open)."""
    assert page.errors == [], page.errors
    assert page.requests == [url], f"the page asked for more than itself: {page.requests}"
    assert page.evaluate("document.scripts.length") == 0


def test_rebuild_report_renders_in_chromium_with_every_chart_and_no_error(tmp_path: Path) -> None:
    # GIVEN a rebuild report with every section, one hostile query among its texts
    path = tmp_path / "report.html"
    path.write_text(render_report(realistic_report(), title="Generation g-minilm-c3"), encoding="utf-8")
    # WHEN headless Chromium loads it and takes a screenshot
    with Browser(width=1280, height=900) as browser:
        page = browser.open(path)
        charts = _charts(page)
        shot = page.screenshot(tmp_path / "report.png")
        hostile = page.evaluate(
            "[...document.querySelectorAll('svg[data-chart=shadow-disagreements] text')]"
            ".some(t => t.textContent.includes('<script>'))"
        )
        not_measured = page.count("section.not-measured")
        # THEN nothing failed, nothing was fetched, the hostile text is shown as text, not run
        _assert_clean(page, path.as_uri())
    assert hostile is True
    assert not_measured == 0
    # AND every chart is there, laid out at a visible size, with marks drawn
    names = [c["name"] for c in charts]
    assert set(names) == REBUILD_CHARTS, names
    for chart in charts:
        assert chart["width"] > 200 and chart["height"] > 20, chart
        assert chart["marks"] >= 1, chart
    # AND the screenshot is a full-page PNG that is not blank
    width, height = _png_size(shot)
    assert width == 1280 and height > 2000
    assert shot.stat().st_size > 100_000
    _keep(shot, "report-screenshot.png")


def test_canary_report_renders_in_chromium(tmp_path: Path) -> None:
    report = realistic_report()
    canary = {key: report[key] for key in ("canary", "shadow", "freshness", "score_histograms")}
    path = tmp_path / "canary.html"
    path.write_text(render_canary_report(canary, title="Canary g-minilm-c3"), encoding="utf-8")
    with Browser() as browser:
        page = browser.open(path)
        names = {c["name"] for c in _charts(page)}
        shot = page.screenshot(tmp_path / "canary.png")
        sections = page.evaluate("[...document.querySelectorAll('section')].map(s => s.dataset.section)")
        _assert_clean(page, path.as_uri())
    assert sections == ["canary", "metrics", "freshness", "shadow", "histograms"]
    assert {"metrics", "canary-weak", "freshness", "shadow-overlap", "score-histogram"} <= names
    assert _png_size(shot)[1] > 900
    _keep(shot, "canary-screenshot.png")


def test_an_empty_report_says_not_measured_and_still_loads_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    path.write_text(render_report({}, title="Generation g-new"), encoding="utf-8")
    with Browser() as browser:
        page = browser.open(path)
        charts, not_measured = page.count("svg.chart"), page.count("section.not-measured")
        _assert_clean(page, path.as_uri())
    assert charts == 0
    assert not_measured == 9


def test_the_harness_does_see_errors_and_outside_requests(tmp_path: Path) -> None:
    # The checks above mean something only if a broken page fails them. The image points at
    # loopback and the page's CSP blocks it, so nothing leaves the browser.
    path = tmp_path / "broken.html"
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy'"
        " content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src='http://127.0.0.1:9/x.png' alt=''><script>console.error('boom'); undefinedCall();</script>"
        "</body></html>",
        encoding="utf-8",
    )
    with Browser() as browser:
        page = browser.open(path)
    assert any("boom" in e for e in page.errors), page.errors
    assert any("undefinedCall" in e for e in page.errors), page.errors
    assert any("Content Security Policy" in e for e in page.errors), page.errors
    assert "http://127.0.0.1:9/x.png" in page.requests
