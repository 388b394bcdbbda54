"""What the demo's parts share: its options, its source schema and its running state."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from dynembed.core.models import RetrievalSpec, VectorSpec
from dynembed.core.schema import SourceSchema
from dynembed.core.telemetry import Telemetry
from dynembed.quality.evaluation import GoldenSet
from dynembed_ops import paths
from dynembed_ops.local.stack import LocalStack

DEMO_SCHEMA = SourceSchema(
    content_attributes=("title", "body"),
    metadata_attributes=("kind", "source", "category"),
    access_attributes=("acl",),
    tenant_attribute="tenant",
)
READER = "reader"
"""The demo's principal: sees public docs only."""


@dataclass
class DemoOptions:
    corpus: Path = paths.FAQ_CORPUS
    queries: Path = paths.FAQ_QUERIES
    qrels: Path = paths.FAQ_QRELS
    edits: Path | None = paths.EDITSTREAM
    max_commits: int = 20
    baseline_model: str = "static-64"
    candidate_model: str | None = "minilm"
    candidate_retrieval: RetrievalSpec = field(default_factory=RetrievalSpec)
    candidate_vectors: VectorSpec = field(default_factory=VectorSpec)
    k: int = 10
    json_out: Path | None = None


@dataclass
class DemoState:
    stack: LocalStack
    options: DemoOptions
    console: Console
    golden: GoldenSet
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def telemetry(self) -> Telemetry:
        return self.stack.services().telemetry
