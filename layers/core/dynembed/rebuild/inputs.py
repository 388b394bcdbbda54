"""The input ops paste into the Step Functions console to start a rebuild (examples in
``events/rebuild_input*.json``, documented in ``docs/rebuilds.md``).

Validated once, by the workflow's first state, so a typo fails the run before anything is
created; every error names the field that is wrong. Later steps receive the normalised input
(``RebuildInput.model_dump(mode="json")``, with ``generation_id`` filled in) and parse it again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dynembed.core.config import TUNING
from dynembed.core.errors import ConfigError, DynembedError
from dynembed.core.models import ChunkerSpec, ModelSpec, RetrievalSpec, VectorSpec
from dynembed.quality.evaluation import GatePolicy, ThresholdPolicy

GENERATION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,79}$"
MAX_BACKFILL_SEGMENTS = 1000
"""Keeps the backfill progress (one registry item) far below DynamoDB's 400 KB."""
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")
_CHUNKER_DEFAULTS = ChunkerSpec()


class ChunkerInput(BaseModel):
    """``ChunkerSpec`` fields, strictly: an unknown key is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = _CHUNKER_DEFAULTS.name
    target_chars: int = Field(default=_CHUNKER_DEFAULTS.target_chars, gt=0)
    max_chars: int = Field(default=_CHUNKER_DEFAULTS.max_chars, gt=0)
    min_chars: int = Field(default=_CHUNKER_DEFAULTS.min_chars, ge=0)
    max_doc_chars: int | None = Field(default=None, gt=0)
    """Truncates documents: only for experiments (a candidate built with it should lose)."""

    @field_validator("name")
    @classmethod
    def _known_chunker(cls, name: str) -> str:
        from dynembed.sync.chunking import chunker_for

        try:
            chunker_for(ChunkerSpec(name=name))
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("chunker.name: ")) from None
        return name

    @model_validator(mode="after")
    def _sizes_in_order(self) -> ChunkerInput:
        if not self.min_chars <= self.target_chars <= self.max_chars:
            raise ValueError(
                f"need min_chars <= target_chars <= max_chars, got {self.min_chars} / "
                f"{self.target_chars} / {self.max_chars}"
            )
        return self

    def spec(self) -> ChunkerSpec:
        return ChunkerSpec(**self.model_dump())


class EvalSetInput(BaseModel):
    """A golden set: JSONL queries and TSV qrels, as bundled paths or ``s3://bucket/key`` URIs.
    A relative path is looked up under ``DYNEMBED_EVAL_DIR``, then the repository root."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queries: str = Field(min_length=1)
    qrels: str = Field(min_length=1)

    @field_validator("queries", "qrels")
    @classmethod
    def _s3_uri_has_a_key(cls, value: str) -> str:
        if value.startswith("s3://") and not S3_URI.match(value):
            raise ValueError(f"{value!r} is not an s3://bucket/key URI")
        return value


class RebuildInput(BaseModel):
    """What a rebuild builds, how it is checked, and how fast it goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation_id: str | None = Field(default=None, pattern=GENERATION_ID_PATTERN)
    """Omit for a fresh id; pass the id of a failed or interrupted run to resume it."""
    model: str = Field(min_length=1)
    """A catalog id (``dynembed models``): minilm, static-64, hash-256, bedrock-titan-v2-1024..."""
    chunker: ChunkerInput = Field(default_factory=ChunkerInput)
    retrieval: RetrievalSpec = Field(default_factory=RetrievalSpec)
    """``vector`` (k-NN) or ``hybrid`` (BM25 + k-NN fused: lexical_weight, fusion linear | rrf,
    rank_constant, candidates, analyzer). A bare string names the mode."""
    vectors: VectorSpec = Field(default_factory=VectorSpec)
    """precision float32 | float16 | byte | binary, on_disk, oversample (rescoring)."""
    eval: EvalSetInput | None = None
    """The golden set; defaults to ``DYNEMBED_EVAL_DIR``'s queries.jsonl + qrels.tsv."""
    gate: GatePolicy = Field(default_factory=GatePolicy)
    threshold: ThresholdPolicy = Field(default_factory=ThresholdPolicy)
    """How the generation's score threshold is calibrated on the golden set."""
    k: int = Field(default=10, ge=1, le=100)
    require_approval: bool = False
    """Wait for a person (``dynembed approve``) after the gate passes and before promoting."""
    approval_timeout_s: int = Field(default=7 * 86_400, ge=1, le=31_536_000)
    """No decision within this time rejects the candidate."""
    backfill_segments: int | None = Field(default=None, ge=1, le=MAX_BACKFILL_SEGMENTS)
    """Parallel scan segments (one child execution each); default: one per ~50,000 items, at
    least 4. A resumed run keeps the first run's count."""
    backfill_concurrency: int | None = Field(default=None, ge=1, le=MAX_BACKFILL_SEGMENTS)
    """Segments backfilled at once; default: what the embedding quota can feed (docs/rebuilds.md)."""
    approve_estimate: bool = False
    """Wait for a person (``dynembed approve``) after the estimate, before anything is embedded."""
    estimate_sample: int = Field(default=1000, ge=10, le=100_000)
    """Items the estimate reads; a table this small or smaller is read entirely."""
    page_size: int = Field(default=TUNING.backfill_page_size, ge=1, le=1000)
    pages_per_task: int = Field(default=10, ge=1, le=1000)
    """Pages one workflow task handles before reporting back (fewer history events per doc)."""
    catchup_wait_s: int = Field(default=TUNING.catchup_wait_s, ge=0, le=3600)
    catchup_max_checks: int = Field(default=20, ge=1, le=1000)
    eval_principal: list[str] = Field(default_factory=lambda: ["public"], min_length=1)
    """Who the golden-set queries run as (user and/or groups); public docs are always visible."""
    comment: str | None = Field(default=None, max_length=1000)
    """Free text for the people reading the execution history."""

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        from dynembed.embedders.catalog import spec_for

        try:
            spec_for(model)
        except DynembedError as exc:
            raise ValueError(str(exc)) from None
        return model

    @field_validator("eval_principal", mode="before")
    @classmethod
    def _principal_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("eval_principal")
    @classmethod
    def _principals_not_blank(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("principals must be non-empty strings")
        return value

    def model_spec(self) -> ModelSpec:
        from dynembed.embedders.catalog import spec_for

        return spec_for(self.model)

    def chunker_spec(self) -> ChunkerSpec:
        return self.chunker.spec()

    def new_generation_id(self) -> str:
        from dynembed.rebuild.generations import generation_id_for

        return generation_id_for(
            self.model_spec(), self.chunker_spec(), retrieval=self.retrieval, vectors=self.vectors
        )


def parse_rebuild_input(data: Mapping[str, Any] | Any) -> RebuildInput:
    """The validated input, or a ConfigError listing each wrong field with its problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"rebuild input must be a JSON object, got {type(data).__name__}")
    try:
        return RebuildInput.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"invalid rebuild input: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """``field.sub: message`` for each problem, ``; ``-separated."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "<input>"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling in docs/rebuilds.md)"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)
