"""Live-query signals and shadow overlap on the Python FAQ set, on the local stack.

Half of the FAQ queries (even positions) are the golden set: the serving generation is
calibrated on it, and the rebuild is evaluated on it. The other half stand in for on-corpus
live traffic; a list of off-topic questions stands in for traffic the corpus cannot answer.
Printed: the weak-retrieval rate and the query-drift figure (mean cosine to the nearest golden
query) of each kind of traffic, on the baseline and on the candidate, and the shadow overlap of
the rebuild, measured on the on-corpus live queries searched while the candidate catches up.

    .venv/bin/python bench/live_signals.py --baseline-model static-64 --candidate-model minilm
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for folder in ("layers/core", "tools", "functions", "."):
    sys.path.insert(0, str(REPO / folder))

OFF_CORPUS = [
    "How long should I boil an egg for a runny yolk?",
    "What is the offside rule in football?",
    "Best time of year to visit Kyoto for cherry blossoms",
    "How do I get red wine out of a carpet?",
    "What are the symptoms of vitamin D deficiency?",
    "How many players are on a rugby union team?",
    "Recipe for a classic French onion soup",
    "How do I repot an orchid?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the capital of Australia?",
    "How do I change a flat tyre on a car?",
    "Which wine goes well with grilled salmon?",
    "How often should I water a cactus?",
    "What causes the northern lights?",
    "How to train a puppy to sit",
    "What is a good stretching routine before running?",
    "How do I knit a scarf for beginners?",
    "When did the Berlin Wall fall?",
    "How to make sourdough starter from scratch",
    "What is the difference between a crocodile and an alligator?",
    "How do I descale a kettle with vinegar?",
    "What is the best way to store fresh basil?",
    "How do tides work?",
    "Tips for sleeping better on long-haul flights",
    "How do I remove rust from a bicycle chain?",
    "What is the rule of thirds in photography?",
    "How many calories are in a banana?",
    "Which muscles does a plank exercise work?",
    "How do I unclog a kitchen sink without chemicals?",
    "What is the plot of Pride and Prejudice?",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-model", default="static-64")
    parser.add_argument("--candidate-model", default="minilm")
    parser.add_argument("--distractors", type=int, default=200, help="docs no query judges relevant")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from dynembed.core.schema import SourceSchema
    from dynembed.quality.evaluation import load_golden_set
    from dynembed.quality.signals import summarize
    from dynembed.rebuild import steps
    from dynembed.rebuild.calibrate import calibrate_generation
    from dynembed_ops import paths
    from dynembed_ops.local.stack import LocalStack
    from dynembed_ops.local.stepfunctions import run_rebuild
    from dynembed_ops.source_app import source_app_for

    work = Path(tempfile.mkdtemp(prefix="dynembed-live-"))
    queries = [json.loads(line) for line in paths.FAQ_QUERIES.read_text().splitlines()]
    qrels = [line.split("\t") for line in paths.FAQ_QRELS.read_text().splitlines()]
    golden_ids = {q["query_id"] for q in queries[0::2]}
    live_on = [q["text"] for q in queries[1::2]]
    (work / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries[0::2]))
    (work / "qrels.tsv").write_text("\n".join("\t".join(r) for r in qrels if r[0] in golden_ids))
    relevant = {r[1] for r in qrels}
    corpus = [json.loads(line) for line in paths.FAQ_CORPUS.read_text().splitlines()]
    docs = [d for d in corpus if d["doc_id"] in relevant]
    docs += [d for d in corpus if d["doc_id"] not in relevant][: args.distractors]
    (work / "corpus.jsonl").write_text("\n".join(json.dumps({**d, "acl": ["public"]}) for d in docs))
    golden = load_golden_set(work / "queries.jsonl", work / "qrels.tsv", name="faq-even")

    figures: dict[str, Any] = {"docs": len(docs), "golden_queries": len(golden.queries)}
    stack = LocalStack(schema=SourceSchema(), query_keep_text=True).start()
    try:
        svc = stack.services()
        baseline = svc.bootstrap(args.baseline_model)
        started = time.perf_counter()
        source_app_for(svc).load(work / "corpus.jsonl")
        stack.drain()
        figures["load_s"] = round(time.perf_counter() - started, 1)
        fields = calibrate_generation(svc, baseline.id, golden, ["public"])
        figures["baseline"] = {
            "generation": baseline.id,
            "threshold": fields["weak_threshold"],
            **traffic_figures(svc, baseline.id, live_on, summarize),
        }

        real_catchup = steps.catchup_status
        shadowed: list[int] = []

        def catchup_with_live_traffic(svc_: Any, config: Any, checks: int, now: float | None = None) -> Any:
            if not shadowed:
                for text in live_on:  # on-corpus live traffic while the candidate catches up
                    svc_.search(text, "public", k=10)
                deadline = time.monotonic() + 600
                candidate = str(config.generation_id)
                while len(svc_.query_samples.comparisons(candidate)) < len(live_on):
                    if time.monotonic() > deadline:
                        raise RuntimeError("shadow comparisons did not arrive in time")
                    time.sleep(0.2)
                shadowed.append(len(live_on))
            return real_catchup(svc_, config, checks, now)

        steps.catchup_status = catchup_with_live_traffic  # type: ignore[assignment]
        started = time.perf_counter()
        with stack.background(interval_s=0.05):
            out = run_rebuild(
                stack,
                {
                    "model": args.candidate_model,
                    "eval": {"queries": str(work / "queries.jsonl"), "qrels": str(work / "qrels.tsv")},
                    "catchup_wait_s": 1,
                },
                timeout_s=3600,
            )
        steps.catchup_status = real_catchup  # type: ignore[assignment]
        candidate = svc.registry.get(out["generation_id"])
        report = candidate.report or {}
        shadow = report.get("shadow") or {}
        figures["rebuild"] = {
            "seconds": round(time.perf_counter() - started, 1),
            "decision": out["decision"],
            "ndcg": {
                "baseline": out["evaluation"]["baseline"]["ndcg"],
                "candidate": out["evaluation"]["candidate"]["ndcg"],
            },
            "shadow": {k: shadow.get(k) for k in ("queries", "overlap@10", "rbo")},
            "shadow_disagreements": shadow.get("disagreements", [])[:5],
        }
        if out["decision"] == "promoted":
            figures["candidate"] = {
                "generation": candidate.id,
                "threshold": report.get("weak_threshold"),
                **traffic_figures(svc, candidate.id, live_on, summarize),
            }
    finally:
        stack.stop()
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


def traffic_figures(svc: Any, generation: str, live_on: list[str], summarize: Any) -> dict[str, Any]:
    """Weak-retrieval rate and drift of on-corpus and off-corpus live queries on the serving generation."""
    out: dict[str, Any] = {}
    for name, texts in (("on_corpus", live_on), ("off_corpus", OFF_CORPUS)):
        since = time.time()
        for text in texts:
            svc.search(text, "public", k=10)
        samples = [s for s in svc.query_samples.samples(generation, since=since, limit=5000)]
        summary = summarize(generation, samples, least=3)
        out[name] = {
            "queries": summary.samples,
            "weak_retrieval_rate": summary.weak_retrieval_rate,
            "query_drift": summary.query_drift,
            "zero_result_rate": summary.zero_result_rate,
            "latency_ms": summary.latency_ms,
            "least_covered": [(row.query, round(row.golden_similarity, 3)) for row in summary.least_covered],
        }
        time.sleep(0.01)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
