"""The rebuild report and the canary report as one self-contained HTML file each.

``render_report(report, title=...)`` takes the report as the plain JSON object that is stored on
the generation and printed by ``dynembed generations --show ID --json`` (``report`` there) and
returns one HTML document: inline CSS, inline SVG charts drawn here, no JavaScript, no external
reference of any kind (a Content-Security-Policy of ``default-src 'none'`` says so to the
browser too). Every text that comes from the report (queries are user text) is escaped.

Every key is optional: a section whose figures are missing says "not measured", and a value of
the wrong type is reported as unreadable in its section rather than breaking the page. Charts
are ``<svg class="chart" data-chart="NAME">``; sections are ``<section data-section="NAME">``
with class ``not-measured`` when they have nothing to show.

Keys of the rebuild report (``dynembed.quality.report.EvaluationReport`` plus what the evaluate step
stores with it)::

    candidate, baseline         {generation_id: str, model_id: str, chunker_version: str | null}
    golden_set: str, k: int, created_at: epoch seconds, report_version: int
    queries_evaluated, queries_without_results, queries_excluded: int
    candidate_metrics, baseline_metrics, deltas
                                {ndcg: float, recall: float, mrr: float}   (any subset)
    gate_passed: bool, gate_reasons: [str], gate_notes: [str]
    policy                      {min_ndcg, min_recall, min_mrr, max_regression,
                                 max_relative_regression: float, require_probes: bool}
    probes: {name: bool}, probe_details: {name: object}
    coverage                    {docs_indexed: int, docs_in_source: int}
    latency_ms                  {p50, p95, mean: float, samples: int}
    embeddings                  {reused: int, computed: int}
    backfill                    {docs: int, runs: int, failed_docs: [str]}
    wins, losses, ties: int
    per_query                   [{query_id: str, text: str, candidate_ndcg: float,
                                  baseline_ndcg: float | null, delta: float | null,
                                  outcome: "win" | "loss" | "tie" | null}]   (worst delta first)
    per_query_trimmed           {kept: int, total: int}
    rejected_reason, failed_reason, previous_failure: str

Optional keys for sections that no dynembed step produces yet (their shape is fixed here)::

    canary      {generation_id: str, k: int, queries: int,
                 metrics: {ndcg, recall, mrr: float},        (the candidate_metrics shape)
                 weak_retrieval_rate: float in [0, 1],       (share of queries answered weakly)
                 weak_threshold: float,                      (the top score under which it is weak)
                 least_covered_queries: [str | {query: str, score: float, hits: int}]}
    shadow      {generation_id: str, queries: int,
                 "overlap@K": float in [0, 1],               (mean top-K overlap, any K)
                 rbo: float in [0, 1],                       (rank-biased overlap)
                 active_scores: [float], candidate_scores: [float],
                 disagreements: [{query: str, overlap: float}]}
    freshness   {p50, p95, ... "pNN": seconds, max: seconds, samples: int,
                 target_p95_s: seconds,                      (the alarm threshold)
                 sentinel_freshness_s: seconds,              (a sentinel edit became searchable)
                 sentinel_delete_s: seconds}                 (a sentinel delete left the index)
    score_histograms
                {label: [float]                              (raw scores, binned here)
                      | {edges: [float] (n + 1), counts: [int] (n)}}
                 label is a generation id, or "candidate" / "active" / "canary".

``render_canary_report`` renders the same schema with the canary's sections first and without
the rebuild's gate and per-query sections.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dynembed.core.errors import DynembedError

METRICS: tuple[tuple[str, str], ...] = (("ndcg", "nDCG"), ("recall", "Recall"), ("mrr", "MRR"))
REBUILD_SECTIONS: tuple[str, ...] = (
    "gate",
    "metrics",
    "per_query",
    "histograms",
    "freshness",
    "shadow",
    "canary",
    "probes",
    "index",
)
CANARY_SECTIONS: tuple[str, ...] = ("canary", "metrics", "freshness", "shadow", "histograms")
MAX_QUERY_BARS = 40
"""More queries than this: the chart draws the worst and the best half each (the table has all)."""
HISTOGRAM_BINS = 20

# Series colours: active (what serves now), candidate (the rebuild), canary.
ACTIVE, CANDIDATE, CANARY = "#8a9bb0", "#2563eb", "#e07b12"
WIN, LOSS, TIE = "#15803d", "#c62828", "#9aa4b1"
INK, MUTED, GRID = "#1f2933", "#5f6b7a", "#e3e8ee"
_SERIES_COLOURS = (CANDIDATE, ACTIVE, CANARY, "#7c3aed", "#0d9488", "#be185d")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_OVERLAP = re.compile(r"^overlap@(\d+)$")


def render_report(
    report: Mapping[str, Any], *, title: str, sections: Sequence[str] = REBUILD_SECTIONS
) -> str:
    """One self-contained HTML document for ``report`` (the stored JSON object)."""
    if not isinstance(report, Mapping):
        raise DynembedError(f"an HTML report needs the report as a JSON object, got {type(report).__name__}")
    unknown = [name for name in sections if name not in _SECTION_RENDERERS]
    if unknown:
        raise ValueError(f"unknown report sections {unknown}; known: {sorted(_SECTION_RENDERERS)}")
    body = [_header(report, title), _summary_cards(report)]
    body += [_SECTION_RENDERERS[name](report) for name in sections]
    return _page(title, "\n".join(body))


def render_canary_report(report: Mapping[str, Any], *, title: str = "Canary report") -> str:
    """The canary's page: canary figures, metrics, freshness, shadow overlap, score histograms."""
    return render_report(report, title=title, sections=CANARY_SECTIONS)


# ---------------------------------------------------------------------------------- values


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object) -> float | None:
    """A finite number, or None (bools, strings, NaN and infinities are not figures)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _num(value)
    return int(number) if number is not None and number == int(number) else None


def _obj(report: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = report.get(key)
    return value if isinstance(value, Mapping) else None


def _numbers(value: object) -> list[float]:
    if not isinstance(value, list | tuple):
        return []
    return [n for n in (_num(v) for v in value) if n is not None]


def _f(value: float | None, digits: int = 3, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def _k(report: Mapping[str, Any]) -> int | None:
    return _int(report.get("k"))


def _label(metric: str, display: str, k: int | None) -> str:
    return f"{display}@{k}" if k else display


def _gen_id(report: Mapping[str, Any], key: str) -> str | None:
    summary = _obj(report, key)
    value = summary.get("generation_id") if summary else None
    return str(value) if value is not None else None


# --------------------------------------------------------------------------------- the page


_CSS_TEMPLATE = """
:root { color-scheme: light; /* colours */ }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 24px 48px; }
header.page { margin-bottom: 16px; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 0 0 10px; }
h3 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
p { margin: 6px 0; }
.sub { color: var(--muted); }
code { font: 12px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; background: #eef1f5; padding: 1px 4px; border-radius: 3px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 12px;
  vertical-align: middle; margin-left: 8px; color: #fff; background: var(--tie); }
.badge.pass { background: var(--win); } .badge.fail { background: var(--loss); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin: 14px 0 18px; }
.card { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 10px 12px; }
.card .v { font-size: 20px; font-weight: 600; white-space: nowrap; }
.card .n { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 16px 18px; margin: 0 0 14px; }
section.not-measured { background: #fafbfc; }
section.not-measured h2 { color: var(--muted); }
.nm { color: var(--muted); font-style: italic; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 24px; align-items: start; }
@media (max-width: 800px) { .grid2 { grid-template-columns: 1fr; } }
svg.chart { display: block; width: 100%; height: auto; max-width: 100%; }
svg.chart text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: var(--ink); }
svg.chart text.m { fill: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
table.narrow { width: auto; min-width: 320px; }
th code { white-space: nowrap; font-weight: 400; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #edf0f4; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
.win { color: var(--win); } .loss { color: var(--loss); } .tie { color: var(--muted); }
.ok { color: var(--win); font-weight: 600; } .bad { color: var(--loss); font-weight: 600; }
ul { margin: 6px 0; padding-left: 20px; }
details { margin-top: 10px; } summary { cursor: pointer; color: var(--muted); }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin: 4px 0 8px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
"""
_CSS = _CSS_TEMPLATE.replace(
    "/* colours */", f"--ink: {INK}; --muted: {MUTED}; --win: {WIN}; --loss: {LOSS}; --tie: {TIE};", 1
)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
        "<footer>Self-contained report: inline CSS and SVG, no scripts, nothing loaded from anywhere."
        " Written by dynembed.</footer>\n</main>\n</body>\n</html>\n"
    )


def _section(name: str, heading: str, content: str | None, *, missing: str = "") -> str:
    """A section; ``content`` None renders it as not measured, with ``missing`` saying why."""
    if content is None:
        why = f": {_e(missing)}" if missing else ""
        return (
            f'<section id="{name}" data-section="{name}" class="not-measured">'
            f'<h2>{_e(heading)}</h2><p class="nm">not measured{why}</p></section>'
        )
    return f'<section id="{name}" data-section="{name}"><h2>{_e(heading)}</h2>{content}</section>'


def _unreadable(key: str, expected: str) -> str:
    return f"the report's {key!r} is not {expected}"


def _legend(series: Sequence[tuple[str, str]]) -> str:
    items = "".join(f'<span><i style="background:{colour}"></i>{_e(name)}</span>' for name, colour in series)
    return f'<div class="legend">{items}</div>'


def _table(
    head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (), *, css: str = ""
) -> str:
    """Cells are HTML already (escape before); columns in ``numeric`` are right-aligned."""

    def cls(i: int) -> str:
        return ' class="r"' if i in numeric else ""

    header = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------- header


def _header(report: Mapping[str, Any], title: str) -> str:
    badge = ""
    passed = report.get("gate_passed")
    if isinstance(passed, bool):
        badge = f'<span class="badge {"pass" if passed else "fail"}">gate {"passed" if passed else "failed"}</span>'
    elif report.get("rejected_reason"):
        badge = '<span class="badge fail">rejected</span>'
    lines = []
    cand, base = _obj(report, "candidate"), _obj(report, "baseline")
    if cand:
        line = (
            f"candidate <code>{_e(cand.get('generation_id', '?'))}</code> ({_e(cand.get('model_id', '?'))})"
        )
        if base:
            line += f" vs active <code>{_e(base.get('generation_id', '?'))}</code> ({_e(base.get('model_id', '?'))})"
        elif "baseline" in report:
            line += " — no active generation to compare with"
        lines.append(line)
    facts = []
    if isinstance(report.get("golden_set"), str):
        facts.append(f"golden set <code>{_e(report['golden_set'])}</code>")
    evaluated = _int(report.get("queries_evaluated"))
    if evaluated is not None:
        facts.append(f"{evaluated} judged queries")
    if _k(report):
        facts.append(f"k={_k(report)}")
    created = _num(report.get("created_at"))
    if created is not None:
        facts.append(_e(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(created))))
    if facts:
        lines.append(" · ".join(facts))
    sub = "".join(f'<p class="sub">{line}</p>' for line in lines)
    return f'<header class="page"><h1>{_e(title)}{badge}</h1>{sub}</header>'


def _summary_cards(report: Mapping[str, Any]) -> str:
    cards: list[tuple[str, str, str]] = []
    k = _k(report)
    cand = _obj(report, "candidate_metrics")
    if cand and _num(cand.get("ndcg")) is not None:
        deltas = _obj(report, "deltas")
        delta = _num(deltas.get("ndcg")) if deltas else None
        note = f"{_f(delta, signed=True)} vs active" if delta is not None else "candidate"
        cards.append((_label("ndcg", "nDCG", k), _f(_num(cand.get("ndcg"))), note))
    if any(isinstance(report.get(key), int) for key in ("wins", "losses", "ties")) and _obj(
        report, "baseline"
    ):
        cards.append(
            (
                "per query",
                f'<span class="win">{_int(report.get("wins")) or 0}</span> / '
                f'<span class="loss">{_int(report.get("losses")) or 0}</span> / '
                f'<span class="tie">{_int(report.get("ties")) or 0}</span>',
                "wins / losses / ties",
            )
        )
    coverage = _obj(report, "coverage")
    if coverage:
        indexed, source = _num(coverage.get("docs_indexed")), _num(coverage.get("docs_in_source"))
        if indexed is not None and source is not None:
            cards.append(
                (
                    "coverage",
                    _pct(indexed / source if source else 1.0),
                    f"{indexed:,.0f} of {source:,.0f} docs",
                )
            )
    latency = _obj(report, "latency_ms")
    if latency and _num(latency.get("p95")) is not None:
        cards.append(
            ("search p95", f"{_num(latency.get('p95')):.1f} ms", f"p50 {_f(_num(latency.get('p50')), 1)} ms")
        )
    freshness = _obj(report, "freshness")
    if freshness and _num(freshness.get("p95")) is not None:
        cards.append(
            (
                "freshness p95",
                _duration(_num(freshness.get("p95"))),
                f"p50 {_duration(_num(freshness.get('p50')))}",
            )
        )
    shadow = _obj(report, "shadow")
    if shadow:
        overlap = _overlap_key(shadow)
        if overlap and _num(shadow.get(overlap)) is not None:
            cards.append(
                ("shadow " + overlap, _f(_num(shadow.get(overlap))), f"rbo {_f(_num(shadow.get('rbo')))}")
            )
    canary = _obj(report, "canary")
    if canary and _num(canary.get("weak_retrieval_rate")) is not None:
        cards.append(
            (
                "canary weak retrieval",
                _pct(_num(canary.get("weak_retrieval_rate"))),
                "share of canary queries",
            )
        )
    if not cards:
        return ""
    items = "".join(
        f'<div class="card"><div class="n">{_e(name)}</div><div class="v">{value}</div><div class="n">{_e(note)}</div></div>'
        for name, value, note in cards
    )
    return f'<div class="cards" data-section="summary">{items}</div>'


# --------------------------------------------------------------------------------- sections


def _gate_section(report: Mapping[str, Any]) -> str:
    passed = report.get("gate_passed")
    stops = [
        f"<p><strong>{_e(key.replace('_', ' '))}:</strong> {_e(report[key])}</p>"
        for key in ("rejected_reason", "failed_reason", "previous_failure")
        if report.get(key)
    ]
    if not isinstance(passed, bool):
        return _section(
            "gate", "Promotion gate", "".join(stops) or None, missing="no evaluation gate in this report"
        )
    verdict = '<p class="ok">passed</p>' if passed else '<p class="bad">failed</p>'
    reasons = [str(r) for r in report.get("gate_reasons") or [] if r]
    notes = [str(n) for n in report.get("gate_notes") or [] if n]
    parts = [verdict, *stops]
    if reasons:
        parts.append("<ul>" + "".join(f'<li class="loss">{_e(r)}</li>' for r in reasons) + "</ul>")
    elif passed:
        parts.append("<p>every check passed</p>")
    if notes:
        parts.append("<ul>" + "".join(f'<li class="tie">note: {_e(n)}</li>' for n in notes) + "</ul>")
    policy = _obj(report, "policy")
    if policy:
        bits = [
            f"min {display} {_f(_num(policy.get('min_' + metric)))}"
            for metric, display in METRICS
            if _num(policy.get("min_" + metric)) is not None
        ]
        if _num(policy.get("max_regression")) is not None:
            bits.append(f"max regression {_f(_num(policy.get('max_regression')))}")
        if _num(policy.get("max_relative_regression")) is not None:
            share = _num(policy.get("max_relative_regression")) or 0.0
            bits.append(f"and at most {share:.0%} of the active value")
        if isinstance(policy.get("require_probes"), bool):
            bits.append(f"probes required: {'yes' if policy['require_probes'] else 'no'}")
        if bits:
            parts.append(f'<p class="sub">Policy: {_e(", ".join(bits))}.</p>')
    return _section("gate", "Promotion gate", "".join(parts))


def _metric_series(report: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(name, colour, {metric: value}) per generation measured: active, candidate, canary."""
    series = []
    base = _obj(report, "baseline_metrics")
    if base:
        series.append((f"active {_gen_id(report, 'baseline') or ''}".strip(), ACTIVE, base))
    cand = _obj(report, "candidate_metrics")
    if cand:
        series.append((f"candidate {_gen_id(report, 'candidate') or ''}".strip(), CANDIDATE, cand))
    canary = _obj(report, "canary")
    metrics = _obj(canary, "metrics") if canary else None
    if canary and metrics:
        series.append((f"canary {canary.get('generation_id') or ''}".strip(), CANARY, metrics))
    return series


def _metrics_section(report: Mapping[str, Any]) -> str:
    series = _metric_series(report)
    if not series or not any(_num(values.get(m)) is not None for _, _, values in series for m, _ in METRICS):
        return _section(
            "metrics", "Metrics per generation", None, missing="no candidate, active or canary metrics"
        )
    canary = _obj(report, "canary")
    k = _k(report) or (_int(canary.get("k")) if canary else None)
    policy = _obj(report, "policy") or {}
    groups = [
        (
            _label(metric, display, k),
            [_num(values.get(metric)) for _, _, values in series],
            _num(policy.get(f"min_{metric}")),
        )
        for metric, display in METRICS
    ]
    chart = _grouped_bars(groups, [colour for _, colour, _ in series], data_chart="metrics")
    deltas = _obj(report, "deltas")
    head = ["metric", *(_series_head(name) for name, _, _ in series)]
    if deltas:
        head.append("delta")
    rows = []
    for metric, display in METRICS:
        row = [_e(_label(metric, display, k)), *(_f(_num(values.get(metric))) for _, _, values in series)]
        if deltas:
            delta = _num(deltas.get(metric))
            css = "win" if delta and delta > 0 else "loss" if delta and delta < 0 else "tie"
            row.append(f'<span class="{css}">{_f(delta, signed=True)}</span>')
        rows.append(row)
    table = _table(head, rows, numeric=range(1, len(head)))
    legend = _legend([(name, colour) for name, colour, _ in series])
    note = '<p class="sub">Dashed lines: the gate\'s minimums.</p>' if any(g[2] for g in groups) else ""
    return _section(
        "metrics",
        "Metrics per generation",
        f'<div class="grid2"><div>{legend}{chart}{note}</div><div>{table}</div></div>',
    )


def _series_head(name: str) -> str:
    """'candidate g-1' as a header: the role, and the generation id unbroken below it."""
    role, _, gen_id = name.partition(" ")
    return f"{_e(role)}<br><code>{_e(gen_id)}</code>" if gen_id else _e(role)


def _per_query_rows(report: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    rows = report.get("per_query")
    if not isinstance(rows, list):
        return None
    return [r for r in rows if isinstance(r, Mapping) and _num(r.get("candidate_ndcg")) is not None]


def _per_query_section(report: Mapping[str, Any]) -> str:
    heading = "Per-query wins and losses"
    rows = _per_query_rows(report)
    if rows is None and "per_query" in report:
        return _section("per_query", heading, None, missing=_unreadable("per_query", "a list"))
    if not rows:
        return _section("per_query", heading, None, missing="no per-query scores in this report")
    k = _k(report)
    label = _label("ndcg", "nDCG", k)
    compared = [r for r in rows if _num(r.get("delta")) is not None]
    parts = []
    if compared:
        wins, losses, ties = (_int(report.get(key)) for key in ("wins", "losses", "ties"))
        if wins is None or losses is None or ties is None:
            counted = [str(r.get("outcome")) for r in compared]
            wins, losses, ties = counted.count("win"), counted.count("loss"), counted.count("tie")
        parts.append(
            f'<p><span class="win"><strong>{wins}</strong> wins</span>, <span class="loss"><strong>{losses}'
            f'</strong> losses</span>, <span class="tie"><strong>{ties}</strong> ties</span> on {_e(label)}'
            " (candidate − active per query, worst first).</p>"
        )
        ordered = sorted(compared, key=lambda r: (_num(r.get("delta")) or 0.0, str(r.get("query_id"))))
        bars = [(_query_label(r), _num(r.get("delta")) or 0.0, _query_tip(r, label)) for r in ordered]
        parts.append(_diverging_bars(bars, data_chart="per-query"))
    else:
        parts.append(
            f"<p>No active generation to compare with: the candidate's {_e(label)} per query, lowest first.</p>"
        )
        ordered = sorted(rows, key=lambda r: (_num(r.get("candidate_ndcg")) or 0.0, str(r.get("query_id"))))
        bars = [
            (_query_label(r), _num(r.get("candidate_ndcg")) or 0.0, _query_tip(r, label)) for r in ordered
        ]
        parts.append(_value_bars(bars, data_chart="per-query", colour=CANDIDATE, max_value=1.0, fmt=_f))
    trimmed = _obj(report, "per_query_trimmed")
    if trimmed:
        parts.append(
            f'<p class="sub">The stored report keeps {_e(trimmed.get("kept"))} of {_e(trimmed.get("total"))} queries'
            " (the worst and the best); the Markdown report has them all.</p>"
        )
    table_rows = []
    for r in ordered:
        outcome = str(r.get("outcome") or "")
        table_rows.append(
            [
                _e(r.get("query_id", "")),
                _e(_short(str(r.get("text", "")), 120)),
                _f(_num(r.get("candidate_ndcg"))),
                _f(_num(r.get("baseline_ndcg"))),
                f'<span class="{_e(outcome)}">{_f(_num(r.get("delta")), signed=True)}</span>',
                f'<span class="{_e(outcome)}">{_e(outcome or "–")}</span>',
            ]
        )
    table = _table(
        ["query", "text", "candidate", "active", "delta", "outcome"], table_rows, numeric=(2, 3, 4)
    )
    parts.append(f"<details><summary>All {len(ordered)} queries</summary>{table}</details>")
    return _section("per_query", heading, "".join(parts))


def _query_label(row: Mapping[str, Any]) -> str:
    return f"{row.get('query_id', '?')}  {row.get('text', '')}"


def _query_tip(row: Mapping[str, Any], label: str) -> str:
    return (
        f"{row.get('query_id', '?')}: {' '.join(str(row.get('text', '')).split())}\n"
        f"{label} candidate {_f(_num(row.get('candidate_ndcg')))}, active {_f(_num(row.get('baseline_ndcg')))}"
    )


def _histograms_section(report: Mapping[str, Any]) -> str:
    heading = "Score histograms"
    parts = []
    rows = _per_query_rows(report) or []
    if rows:
        label = _label("ndcg", "nDCG", _k(report))
        series = []
        base = _numbers([r.get("baseline_ndcg") for r in rows])
        if base:
            series.append((f"active {_gen_id(report, 'baseline') or ''}".strip(), ACTIVE, base))
        series.append(
            (
                f"candidate {_gen_id(report, 'candidate') or ''}".strip(),
                CANDIDATE,
                _numbers([r.get("candidate_ndcg") for r in rows]),
            )
        )
        edges = [i / 10 for i in range(11)]
        hist = [(name, colour, edges, _bin(values, edges)) for name, colour, values in series]
        parts.append(f"<h3>Per-query {_e(label)}</h3>{_legend([(n, c) for n, c, _ in series])}")
        parts.append(
            _histogram(hist, data_chart="ndcg-histogram", x_label=f"{label} per query", y_label="queries")
        )
    scores = report.get("score_histograms")
    if isinstance(scores, Mapping) and scores:
        parts.append("<h3>Retrieval scores</h3>")
        parts.append(_score_histograms(scores, data_chart="score-histogram"))
    elif "score_histograms" in report:
        parts.append(
            f'<p class="nm">retrieval scores: {_e(_unreadable("score_histograms", "an object of score lists"))}</p>'
        )
    else:
        parts.append('<p class="nm">retrieval score histograms: not measured</p>')
    if not rows and not (isinstance(scores, Mapping) and scores):
        return _section("histograms", heading, None, missing="no per-query scores and no score histograms")
    return _section("histograms", heading, "".join(parts))


def _score_histograms(scores: Mapping[str, Any], *, data_chart: str) -> str:
    """Raw score lists share bins; given histograms are drawn as they are (together when their
    edges agree, else one chart each)."""
    raw = {str(name): _numbers(v) for name, v in scores.items() if isinstance(v, list | tuple)}
    raw = {name: v for name, v in raw.items() if v}
    given: dict[str, tuple[list[float], list[float]]] = {}
    for name, value in scores.items():
        if isinstance(value, Mapping):
            edges, counts = _numbers(value.get("edges")), _numbers(value.get("counts"))
            if len(edges) == len(counts) + 1 and counts:
                given[str(name)] = (edges, counts)
    colours = {name: _colour_for(name, i) for i, name in enumerate([*raw, *given])}
    charts = []
    if raw:
        edges = _edges([v for values in raw.values() for v in values])
        hist = [(name, colours[name], edges, _bin(values, edges)) for name, values in raw.items()]
        charts.append(
            _legend([(n, colours[n]) for n in raw])
            + _histogram(hist, data_chart=data_chart, x_label="score", y_label="hits")
        )
    groups: dict[tuple[float, ...], list[str]] = {}
    for name, (edges, _) in given.items():
        groups.setdefault(tuple(edges), []).append(name)
    for edge_key, names in groups.items():
        hist = [(n, colours[n], list(edge_key), given[n][1]) for n in names]
        charts.append(
            _legend([(n, colours[n]) for n in names])
            + _histogram(hist, data_chart=data_chart, x_label="score", y_label="hits")
        )
    unreadable = [str(n) for n in scores if str(n) not in raw and str(n) not in given]
    if unreadable:
        charts.append(
            f'<p class="nm">unreadable histograms (not a score list nor edges/counts): {_e(", ".join(unreadable))}</p>'
        )
    return "".join(charts)


def _colour_for(name: str, index: int) -> str:
    lowered = name.lower()
    if lowered.startswith("active") or lowered == "baseline":
        return ACTIVE
    if lowered.startswith("canary"):
        return CANARY
    if lowered.startswith("candidate"):
        return CANDIDATE
    return _SERIES_COLOURS[index % len(_SERIES_COLOURS)]


def _freshness_section(report: Mapping[str, Any]) -> str:
    heading = "Freshness"
    fresh = report.get("freshness")
    if fresh is None:
        return _section("freshness", heading, None, missing="no freshness figures in this report")
    if not isinstance(fresh, Mapping):
        return _section("freshness", heading, None, missing=_unreadable("freshness", "an object"))
    percentiles = sorted(
        (
            (float(m.group(1)), str(key), _num(value))
            for key, value in fresh.items()
            if (m := _PERCENTILE.match(str(key)))
        ),
    )
    bars = [
        (f"p{key[1:]}", value, f"{key}: {_duration(value)} from change to searchable")
        for _, key, value in percentiles
        if value is not None
    ]
    if _num(fresh.get("max")) is not None:
        bars.append(("max", _num(fresh.get("max")) or 0.0, f"max: {_duration(_num(fresh.get('max')))}"))
    sentinels = [
        (label, _num(fresh.get(key)))
        for key, label in (
            ("sentinel_freshness_s", "sentinel edit searchable after"),
            ("sentinel_delete_s", "sentinel delete gone after"),
        )
    ]
    sentinel_bars = [
        (label, value, f"{label} {_duration(value)}") for label, value in sentinels if value is not None
    ]
    if not bars and not sentinel_bars:
        return _section("freshness", heading, None, missing="the freshness object has no percentiles")
    target = _num(fresh.get("target_p95_s"))
    parts = ["<p>Seconds from a change in the source table to the change being searchable.</p>"]
    samples = _int(fresh.get("samples"))
    if samples is not None:
        parts.append(f'<p class="sub">{samples:,} changes measured.</p>')
    all_bars = [(label, value or 0.0, tip) for label, value, tip in [*bars, *sentinel_bars]]
    top = max([value for _, value, _ in all_bars] + [target or 0.0]) or 1.0
    parts.append(
        _value_bars(
            all_bars,
            data_chart="freshness",
            colour=CANDIDATE,
            max_value=top * 1.1,
            fmt=_duration,
            target=target,
            target_label=f"target p95 {_duration(target)}" if target else "",
            label_width=210,
        )
    )
    return _section("freshness", heading, "".join(parts))


def _overlap_key(shadow: Mapping[str, Any]) -> str | None:
    keys = sorted((int(m.group(1)), str(key)) for key in shadow if (m := _OVERLAP.match(str(key))))
    return keys[0][1] if keys else None


def _shadow_section(report: Mapping[str, Any]) -> str:
    heading = "Shadow traffic: candidate vs active on live queries"
    shadow = report.get("shadow")
    if shadow is None:
        return _section("shadow", heading, None, missing="no shadow run in this report")
    if not isinstance(shadow, Mapping):
        return _section("shadow", heading, None, missing=_unreadable("shadow", "an object"))
    parts = []
    queries = _int(shadow.get("queries"))
    if queries is not None:
        parts.append(f"<p>{queries:,} live queries answered by both generations.</p>")
    overlap_key = _overlap_key(shadow)
    gauges = []
    if overlap_key and _num(shadow.get(overlap_key)) is not None:
        gauges.append(
            (f"mean {overlap_key}", _num(shadow.get(overlap_key)) or 0.0, "share of top results both return")
        )
    if _num(shadow.get("rbo")) is not None:
        gauges.append(
            ("rank-biased overlap", _num(shadow.get("rbo")) or 0.0, "agreement weighted to the top ranks")
        )
    if gauges:
        parts.append(
            _value_bars(
                gauges, data_chart="shadow-overlap", colour=CANDIDATE, max_value=1.0, fmt=_f, label_width=190
            )
        )
    disagreements = (
        [
            d
            for d in shadow.get("disagreements") or []
            if isinstance(d, Mapping) and _num(d.get("overlap")) is not None
        ]
        if isinstance(shadow.get("disagreements"), list)
        else []
    )
    if disagreements:
        ordered = sorted(disagreements, key=lambda d: (_num(d.get("overlap")) or 0.0, str(d.get("query"))))[
            :MAX_QUERY_BARS
        ]
        bars = [
            (_short(str(d.get("query", "")), 40), _num(d.get("overlap")) or 0.0, str(d.get("query", "")))
            for d in ordered
        ]
        parts.append("<h3>Queries they disagree on most (overlap, lowest first)</h3>")
        parts.append(_value_bars(bars, data_chart="shadow-disagreements", colour=LOSS, max_value=1.0, fmt=_f))
    active, candidate = _numbers(shadow.get("active_scores")), _numbers(shadow.get("candidate_scores"))
    if active or candidate:
        series = [
            (n, c, v) for n, c, v in (("active", ACTIVE, active), ("candidate", CANDIDATE, candidate)) if v
        ]
        edges = _edges([*active, *candidate])
        hist = [(n, c, edges, _bin(v, edges)) for n, c, v in series]
        parts.append("<h3>Top-hit scores</h3>" + _legend([(n, c) for n, c, _ in series]))
        parts.append(_histogram(hist, data_chart="shadow-scores", x_label="score", y_label="queries"))
    if not parts:
        return _section("shadow", heading, None, missing="the shadow object has no overlap figures")
    return _section("shadow", heading, "".join(parts))


def _canary_section(report: Mapping[str, Any]) -> str:
    heading = "Canary"
    canary = report.get("canary")
    if canary is None:
        return _section("canary", heading, None, missing="no canary run in this report")
    if not isinstance(canary, Mapping):
        return _section("canary", heading, None, missing=_unreadable("canary", "an object"))
    parts = []
    facts = []
    if canary.get("generation_id"):
        facts.append(f"generation <code>{_e(canary['generation_id'])}</code>")
    if _int(canary.get("queries")) is not None:
        facts.append(f"{_int(canary.get('queries')):,} canary queries")
    if facts:
        parts.append(f"<p>{' · '.join(facts)}</p>")
    metrics = _obj(canary, "metrics") or {}
    if any(_num(metrics.get(m)) is not None for m, _ in METRICS):
        parts.append(
            '<p class="sub">Its metrics stand beside the other generations\' under "Metrics per generation".</p>'
        )
    weak = _num(canary.get("weak_retrieval_rate"))
    if weak is not None:
        threshold = _num(canary.get("weak_threshold"))
        rule = f" (top score under {_f(threshold)})" if threshold is not None else ""
        parts.append(f"<h3>Weak retrieval{_e(rule)}</h3>")
        parts.append(
            _value_bars(
                [("weak retrieval rate", weak, f"{weak:.1%} of canary queries")],
                data_chart="canary-weak",
                colour=CANARY,
                max_value=1.0,
                fmt=_pct,
                label_width=190,
            )
        )
    least = canary.get("least_covered_queries")
    if isinstance(least, list) and least:
        rows = []
        for item in least:
            if isinstance(item, Mapping):
                hits = _int(item.get("hits"))
                rows.append(
                    [
                        _e(_short(str(item.get("query", "")), 120)),
                        _f(_num(item.get("score"))),
                        "–" if hits is None else str(hits),
                    ]
                )
            else:
                rows.append([_e(_short(str(item), 120)), "–", "–"])
        parts.append(
            "<h3>Least covered queries</h3>" + _table(["query", "top score", "hits"], rows, numeric=(1, 2))
        )
    if not parts:
        return _section("canary", heading, None, missing="the canary object has no figures")
    return _section("canary", heading, "".join(parts))


def _probes_section(report: Mapping[str, Any]) -> str:
    probes = report.get("probes")
    if not isinstance(probes, Mapping) or not probes:
        return _section("probes", "Probes", None, missing="no probes were run")
    details = _obj(report, "probe_details") or {}
    rows = []
    for name, ok in sorted(probes.items()):
        verdict = '<span class="ok">pass</span>' if ok is True else '<span class="bad">FAIL</span>'
        detail = details.get(name)
        shown = _short(json.dumps(detail, sort_keys=True, default=str), 160) if detail is not None else ""
        rows.append([f"<code>{_e(name)}</code>", verdict, f"<code>{_e(shown)}</code>" if shown else ""])
    return _section("probes", "Probes", _table(["probe", "result", "details"], rows))


def _index_section(report: Mapping[str, Any]) -> str:
    rows = []
    coverage = _obj(report, "coverage")
    if coverage:
        indexed, source = _num(coverage.get("docs_indexed")), _num(coverage.get("docs_in_source"))
        if indexed is not None and source is not None:
            rows.append(
                [
                    "coverage",
                    f"{indexed:,.0f} of {source:,.0f} source docs indexed ({_pct(indexed / source if source else 1.0)})",
                ]
            )
    latency = _obj(report, "latency_ms")
    if latency:
        samples = _int(latency.get("samples"))
        over = f" over {samples} queries" if samples else ""
        rows.append(
            [
                "search latency",
                f"p50 {_f(_num(latency.get('p50')), 1)} ms, p95 {_f(_num(latency.get('p95')), 1)} ms,"
                f" mean {_f(_num(latency.get('mean')), 1)} ms{over}",
            ]
        )
    emb = _obj(report, "embeddings")
    if emb:
        reused, computed = _num(emb.get("reused")) or 0.0, _num(emb.get("computed")) or 0.0
        share = f" ({_pct(reused / (reused + computed))} reused)" if reused + computed else ""
        rows.append(["embeddings", f"{reused:,.0f} reused, {computed:,.0f} computed{share}"])
    backfill = _obj(report, "backfill")
    if backfill:
        failed = [str(d) for d in backfill.get("failed_docs") or []]
        runs = _int(backfill.get("runs")) or 0
        text = f"{_int(backfill.get('docs')) or 0:,} docs in {runs} run{'' if runs == 1 else 's'}"
        rows.append(["backfill", text + (f"; failed: {', '.join(failed)}" if failed else "")])
    queries = [
        (key.replace("_", " "), _int(report.get(key)))
        for key in ("queries_evaluated", "queries_without_results", "queries_excluded")
    ]
    rows += [[name, f"{value:,}"] for name, value in queries if value is not None]
    if not rows:
        return _section("index", "Index", None, missing="no coverage, latency or embedding figures")
    return _section("index", "Index", _table(["", ""], [[_e(a), _e(b)] for a, b in rows]))


_SECTION_RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "gate": _gate_section,
    "metrics": _metrics_section,
    "per_query": _per_query_section,
    "histograms": _histograms_section,
    "freshness": _freshness_section,
    "shadow": _shadow_section,
    "canary": _canary_section,
    "probes": _probes_section,
    "index": _index_section,
}


# ----------------------------------------------------------------------------------- charts
# Each returns one <svg class="chart" data-chart="..."> with a viewBox, so it scales with the page.


def _svg(data_chart: str, width: float, height: float, label: str, content: Sequence[str]) -> str:
    return (
        f'<svg class="chart" data-chart="{_e(data_chart)}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}"'
        f' role="img" aria-label="{_e(label)}">{"".join(content)}</svg>'
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    size: int = 11,
    muted: bool = False,
    weight: str = "",
    rotate: float = 0,
) -> str:
    cls = ' class="m"' if muted else ""
    bold = f' font-weight="{weight}"' if weight else ""
    turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{cls}{bold}{turn}>'
        f"{_e(text)}</text>"
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "") -> str:
    title = f"<title>{_e(tip)}</title>" if tip else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{fill}" rx="1.5">{title}</rect>'


def _line(
    x1: float, y1: float, x2: float, y2: float, stroke: str = GRID, *, dash: bool = False, width: float = 1
) -> str:
    dashed = ' stroke-dasharray="4 3"' if dash else ""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{width}"{dashed}/>'


def _grouped_bars(
    groups: Sequence[tuple[str, Sequence[float | None], float | None]],
    colours: Sequence[str],
    *,
    data_chart: str,
) -> str:
    """Vertical bars on [0, 1]: one group per metric, one bar per series, value above each bar;
    a group's dashed line marks its minimum when given."""
    width, height, left, right, top, bottom = 560.0, 300.0, 40.0, 10.0, 14.0, 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    out = []
    for i in range(6):
        tick = i / 5
        y = top + plot_h * (1 - tick)
        out.append(_line(left, y, width - right, y))
        out.append(_text(left - 6, y + 4, f"{tick:.1f}", anchor="end", size=10, muted=True))
    group_w = plot_w / max(len(groups), 1)
    count = max(len(colours), 1)
    bar_w = min(48.0, group_w * 0.8 / count)
    for g, (name, values, minimum) in enumerate(groups):
        x0 = left + g * group_w + (group_w - bar_w * count) / 2
        for s, value in enumerate(values):
            x = x0 + s * bar_w
            if value is None:
                out.append(_text(x + bar_w / 2, top + plot_h - 4, "–", anchor="middle", muted=True))
                continue
            shown = min(max(value, 0.0), 1.0)
            h = plot_h * shown
            out.append(
                _rect(
                    x + 2, top + plot_h - h, bar_w - 4, h, colours[s % len(colours)], f"{name}: {value:.3f}"
                )
            )
            out.append(_text(x + bar_w / 2, top + plot_h - h - 4, f"{value:.3f}", anchor="middle", size=10))
        if minimum:
            y = top + plot_h * (1 - min(minimum, 1.0))
            out.append(_line(x0 - 4, y, x0 + bar_w * count + 4, y, LOSS, dash=True, width=1.5))
        out.append(
            _text(left + g * group_w + group_w / 2, height - 10, name, anchor="middle", size=12, weight="600")
        )
    out.append(_line(left, top + plot_h, width - right, top + plot_h, MUTED))
    return _svg(data_chart, width, height, "metrics per generation", out)


def _fit(label: str, width: float) -> str:
    """Cut to what a label column this wide holds at 11px (about 6.4 units a character)."""
    return _short(label, max(4, int((width - 14) / 6.4)))


def _nice_step(peak: float, ticks: int = 4) -> float:
    """A 1, 2, 2.5 or 5 times a power of ten, so that about ``ticks`` steps cover ``peak``."""
    raw = max(peak, 1e-9) / ticks
    magnitude: float = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude + 1e-12)


def _sampled(rows: Sequence[tuple[str, float, str]]) -> tuple[list[tuple[str, float, str]], int]:
    """At most MAX_QUERY_BARS rows: the first and the last half each; and how many were left out."""
    if len(rows) <= MAX_QUERY_BARS:
        return list(rows), 0
    half = MAX_QUERY_BARS // 2
    return [*rows[:half], *rows[-half:]], len(rows) - 2 * half


def _diverging_bars(rows: Sequence[tuple[str, float, str]], *, data_chart: str) -> str:
    """One horizontal bar per row around zero: losses left in red, wins right in green."""
    shown, left_out = _sampled(rows)
    label_w, plot_w, value_w, row_h, top = 270.0, 380.0, 60.0, 17.0, 36.0
    width = label_w + plot_w + value_w
    gap = 1 if left_out else 0
    height = top + row_h * (len(shown) + gap) + 10
    scale = max((abs(v) for _, v, _ in shown), default=0.0)
    scale = max(scale, 0.05)
    mid = label_w + plot_w / 2
    out = [
        _text(label_w + plot_w / 2 - 8, 11, "← candidate worse", anchor="end", size=11, muted=True),
        _text(label_w + plot_w / 2 + 8, 11, "candidate better →", size=11, muted=True),
    ]
    for frac in (-1.0, -0.5, 0.0, 0.5, 1.0):
        x = mid + frac * plot_w / 2
        out.append(_line(x, top - 6, x, height - 10, GRID if frac else MUTED))
        out.append(
            _text(x, top - 10, f"{frac * scale:+.2f}" if frac else "0", anchor="middle", size=9, muted=True)
        )
    y = top
    for index, (label, value, tip) in enumerate(shown):
        if left_out and index == MAX_QUERY_BARS // 2:
            out.append(
                _text(
                    mid,
                    y + 12,
                    f"… {left_out} queries in between not drawn …",
                    anchor="middle",
                    size=10,
                    muted=True,
                )
            )
            y += row_h
        w = abs(value) / scale * plot_w / 2
        colour = WIN if value > 1e-9 else LOSS if value < -1e-9 else TIE
        x = mid if value >= 0 else mid - w
        out.append(_text(4, y + 12, _fit(label, label_w), size=11))
        if colour == TIE:
            out.append(_rect(mid - 1.5, y + 3, 3, row_h - 6, TIE, f"{tip}\ndelta 0 (tie)"))
        else:
            out.append(_rect(x, y + 3, w, row_h - 6, colour, f"{tip}\ndelta {value:+.3f}"))
        out.append(_text(width - 4, y + 12, f"{value:+.3f}", anchor="end", size=10, muted=colour == TIE))
        y += row_h
    return _svg(data_chart, width, height, "per-query deltas", out)


def _value_bars(
    rows: Sequence[tuple[str, float, str]],
    *,
    data_chart: str,
    colour: str,
    max_value: float,
    fmt: Callable[[float | None], str],
    target: float | None = None,
    target_label: str = "",
    label_width: float = 250.0,
) -> str:
    """Horizontal bars from zero, label left, value right; an optional dashed target line."""
    shown, left_out = _sampled(rows)
    label_w, value_w, row_h = label_width, 80.0, 20.0
    plot_w = 710.0 - label_w - value_w
    top = 22.0 if target else 6.0
    width = label_w + plot_w + value_w
    height = top + row_h * (len(shown) + (1 if left_out else 0)) + 6
    max_value = max_value or 1.0
    out = [_line(label_w, top - 2, label_w, height - 4, MUTED)]
    y = top
    for index, (label, value, tip) in enumerate(shown):
        if left_out and index == MAX_QUERY_BARS // 2:
            out.append(
                _text(
                    label_w + plot_w / 2,
                    y + 14,
                    f"… {left_out} in between not drawn …",
                    anchor="middle",
                    size=10,
                    muted=True,
                )
            )
            y += row_h
        w = plot_w * min(max(value, 0.0), max_value) / max_value
        out.append(_text(4, y + 14, _fit(label, label_w), size=11))
        out.append(_rect(label_w, y + 4, w, row_h - 8, colour, tip))
        out.append(_text(label_w + w + 6, y + 14, fmt(value), size=10))
        y += row_h
    if target:
        x = label_w + plot_w * min(target, max_value) / max_value
        out.append(_line(x, top - 6, x, height - 4, LOSS, dash=True, width=1.5))
        out.append(_text(x, 11, target_label, anchor="middle", size=10))
    return _svg(data_chart, width, height, data_chart.replace("-", " "), out)


def _edges(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> list[float]:
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    step = (high - low) / bins
    return [low + i * step for i in range(bins)] + [high]


def _bin(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """Counts per [edge_i, edge_i+1); the last bin is closed, values outside are dropped."""
    counts = [0.0] * (len(edges) - 1)
    low, high = edges[0], edges[-1]
    for value in values:
        if value < low or value > high:
            continue
        index = len(counts) - 1
        for i in range(len(counts)):
            if value < edges[i + 1]:
                index = i
                break
        counts[index] += 1
    return counts


def _histogram(
    series: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
    *,
    data_chart: str,
    x_label: str,
    y_label: str,
) -> str:
    """Bins along x, one bar per series in each bin (series share the first one's edges)."""
    width, height, left, right, top, bottom = 700.0, 220.0, 44.0, 22.0, 12.0, 42.0
    plot_w, plot_h = width - left - right, height - top - bottom
    edges = list(series[0][2]) if series else [0.0, 1.0]
    bins = len(edges) - 1
    highest = max((c for _, _, _, counts in series for c in counts), default=0.0) or 1.0
    step = _nice_step(highest)
    peak = step * math.ceil(highest / step - 1e-9)
    out = []
    for i in range(round(peak / step) + 1):
        tick = i * step
        y = top + plot_h * (1 - tick / peak)
        out.append(_line(left, y, width - right, y))
        out.append(_text(left - 6, y + 4, f"{tick:g}", anchor="end", size=10, muted=True))
    bin_w = plot_w / max(bins, 1)
    bar_w = bin_w * 0.86 / max(len(series), 1)
    for s, (name, colour, _, counts) in enumerate(series):
        for b, count in enumerate(counts[:bins]):
            h = plot_h * count / peak
            x = left + b * bin_w + bin_w * 0.07 + s * bar_w
            tip = f"{name}: {count:g} in [{edges[b]:.3g}, {edges[b + 1]:.3g}{']' if b == bins - 1 else ')'}"
            out.append(_rect(x, top + plot_h - h, bar_w, h, colour, tip))
    every = max(1, bins // 10)
    span = edges[-1] - edges[0]
    digits = 2 if span <= 2 else 1 if span <= 20 else 0
    for b in range(0, bins + 1, every):
        x = left + b * bin_w
        out.append(_line(x, top + plot_h, x, top + plot_h + 4, MUTED))
        out.append(
            _text(x, top + plot_h + 15, f"{edges[b]:.{digits}f}", anchor="middle", size=10, muted=True)
        )
    out.append(_line(left, top + plot_h, width - right, top + plot_h, MUTED))
    out.append(_text(left + plot_w / 2, height - 6, x_label, anchor="middle", size=11, muted=True))
    out.append(_text(12, top + plot_h / 2, y_label, anchor="middle", size=11, muted=True, rotate=-90))
    return _svg(data_chart, width, height, f"histogram of {x_label}", out)
