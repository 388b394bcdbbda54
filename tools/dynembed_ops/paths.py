"""Where the shipped data lives (inside this repository; nothing reads outside it)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
FAQ_DIR = DATA_DIR / "python-faq"
FAQ_CORPUS = FAQ_DIR / "corpus.jsonl"
FAQ_QUERIES = FAQ_DIR / "queries.jsonl"
FAQ_QRELS = FAQ_DIR / "qrels.tsv"
EDITSTREAM = DATA_DIR / "editstream" / "editstream.jsonl.gz"
FUNCTIONS_DIR = REPO_ROOT / "functions"
