"""Embedding at the provider's quota: the real Titan adapter against a fake Bedrock that
throttles beyond a requests- and a tokens-per-window quota (dynembed_ops.bench.quota_bench).

    .venv/bin/python bench/embed_quota.py [--instances 3] [--threads 4] [--window-s 2]
        [--requests-per-window 60] [--tokens-per-window 8000] [--texts 700] [--unknown-quota] [--json OUT]

Texts are the FAQ corpus's chunks. Exits 1 if throughput is under 90% of the quota, a text was
lost, or a call took more attempts than allowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dynembed.core.models import ChunkerSpec
from dynembed.sync.chunking import chunker_for
from dynembed_ops import paths
from dynembed_ops.bench.quota_bench import QuotaBenchOptions, run_quota_bench


def faq_chunks(limit: int) -> list[str]:
    chunker = chunker_for(ChunkerSpec())
    texts: list[str] = []
    for line in paths.FAQ_CORPUS.read_text().splitlines():
        doc = json.loads(line)
        texts += [c.text for c in chunker.chunk([("title", doc["title"]), ("body", doc["body"])])]
        if len(texts) >= limit:
            break
    return list(dict.fromkeys(texts))[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=3, help="Lambda instances (own limiter each)")
    parser.add_argument("--threads", type=int, default=4, help="InvokeModel threads per instance")
    parser.add_argument("--window-s", type=float, default=2.0, help="quota window (AWS: 60 s)")
    parser.add_argument("--requests-per-window", type=int, default=60)
    parser.add_argument("--tokens-per-window", type=int, default=8_000)
    parser.add_argument("--texts", type=int, default=700)
    parser.add_argument("--unknown-quota", action="store_true", help="instances are not told the quota")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    options = QuotaBenchOptions(
        texts=faq_chunks(args.texts),
        instances=args.instances,
        threads=args.threads,
        window_s=args.window_s,
        requests_per_window=args.requests_per_window,
        tokens_per_window=args.tokens_per_window,
        known_quota=not args.unknown_quota,
    )
    result = run_quota_bench(options)
    for line in result.lines():
        print(line)
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    ok = result.utilisation >= 0.9 and result.lost == 0
    print("PASS" if ok else "FAIL: needs >= 90% of the quota and no text lost")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
