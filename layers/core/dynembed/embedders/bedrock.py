"""Amazon Bedrock embedders (production): Titan Text Embeddings v2 and Cohere Embed v3.

The ``bedrock-runtime`` client is injected (tests pass one wrapped in botocore's Stubber) or
built lazily on first use. Retries live here, in one layer: the default client is built with
botocore's own retries off, so attempts do not multiply. Every call is paced by the model's
``AdaptiveRateLimiter`` (one per model per process, shared by the threads: ``throttle.py``),
which backs off multiplicatively on ``ThrottlingException`` and climbs back additively, so a
backfill runs near the account's quota instead of into it. Throttling and unavailability are
retried a bounded number of times with capped exponential backoff and full jitter, then surface
as ``TransientError`` so the caller's queue retries the job later (never dropped); any other
failure is an ``EmbeddingError`` naming the model.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dynembed.core.errors import ConfigError, EmbeddingError, EmbeddingIncomplete, TransientError
from dynembed.core.models import DistanceSpace, ModelSpec
from dynembed.cost.tokens import CharsPerToken
from dynembed.embedders.throttle import AdaptiveRateLimiter, shared_limiter, throttle_kind

_TOKENS = CharsPerToken()
"""The limiter's token estimate (Bedrock's tokenizers are not published)."""

TITAN_V2_MODEL_ID = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
TITAN_MAX_CHARS = 50_000
"""Titan v2 rejects longer inputText; it reads up to 8,192 tokens of what it gets."""

COHERE_MODEL_IDS = {
    "bedrock-cohere-en-v3": "cohere.embed-english-v3",
    "bedrock-cohere-multilingual-v3": "cohere.embed-multilingual-v3",
}
COHERE_DIMENSION = 1024
COHERE_MAX_TEXTS = 96
COHERE_MAX_CHARS = 2048
"""Bedrock validates this per text before ``truncate`` applies (512 tokens is about 2,048 chars)."""

TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "InternalServerException",
    }
)
TRANSIENT_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})
_NETWORK_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)


def titan_name(dimension: int) -> str:
    return f"bedrock-titan-v2-{dimension}"


def titan_spec(dimension: int = 1024) -> ModelSpec:
    if dimension not in TITAN_V2_DIMENSIONS:
        raise ConfigError(
            f"Titan Text Embeddings v2 dimension must be one of {list(TITAN_V2_DIMENSIONS)}, not {dimension}"
        )
    return ModelSpec(
        provider="bedrock",
        name=titan_name(dimension),
        version="1",
        dimension=dimension,
        normalized=True,
        space=DistanceSpace.COSINE,
    )


def cohere_spec(name: str) -> ModelSpec:
    if name not in COHERE_MODEL_IDS:
        raise ConfigError(f"unknown Cohere model {name!r}; known: {sorted(COHERE_MODEL_IDS)}")
    return ModelSpec(
        provider="bedrock",
        name=name,
        version="1",
        dimension=COHERE_DIMENSION,
        normalized=True,
        space=DistanceSpace.COSINE,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
    and Jitter"): spreads throttled callers out instead of retrying in lockstep."""

    max_attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))


def default_bedrock_client(region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A ``bedrock-runtime`` client with botocore's retries off: ``_BedrockModel`` retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.client("bedrock-runtime", region_name=region, endpoint_url=endpoint_url, config=config)


def _is_transient(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in TRANSIENT_ERROR_CODES or status in TRANSIENT_HTTP_STATUSES


THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})


def default_limiter(bedrock_model_id: str, private: bool = False) -> AdaptiveRateLimiter:
    """The process's limiter for a model: it starts at its share of the configured quota
    (``TUNING``: the quota over the sync function's reserved concurrency) and may climb to the
    whole quota; with no quota configured it starts low and finds the rate by slow start.
    ``private``: a limiter of its own (an embedder whose backoff a test controls: one test's
    throttling must not slow the next)."""

    def build() -> AdaptiveRateLimiter:
        from dynembed.core.config import TUNING

        rpm, tpm = TUNING.embedding_requests_per_minute, TUNING.embedding_tokens_per_minute
        share = max(1, TUNING.sync_reserved_concurrency)
        requests = rpm / 60.0 if rpm else None
        tokens = tpm / 60.0 if tpm else None
        return AdaptiveRateLimiter(
            requests_per_s=requests / share if requests else 2.0,
            tokens_per_s=tokens / share if tokens else 2_000.0,
            max_requests_per_s=requests,
            max_tokens_per_s=tokens,
        )

    if private:
        return build()
    return shared_limiter(f"bedrock:{bedrock_model_id}", build)


@dataclass
class CallStats:
    """What the retry loop did, for benchmarks and logs."""

    calls: int = 0
    throttled: int = 0
    retries: int = 0
    gave_up: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class _BedrockModel:
    """One Bedrock model behind InvokeModel, with the paced retry loop every embedder shares."""

    def __init__(
        self,
        bedrock_model_id: str,
        client: Any | None,
        region: str | None,
        retry: RetryPolicy | None,
        sleep: Callable[[float], None] | None,
        rng: random.Random | None,
        limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        self.bedrock_model_id = bedrock_model_id
        self._client = client
        self._region = region
        self._client_lock = threading.Lock()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep or time.sleep
        self._rng = rng or random.Random()
        self.limiter = limiter
        self.stats = CallStats()

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = default_bedrock_client(self._region)
            return self._client

    def invoke(self, body: dict[str, Any], tokens: int = 1) -> dict[str, Any]:
        """One InvokeModel call for ``tokens`` (estimated) input tokens, paced and retried."""
        payload = json.dumps(body)
        last_error: Exception | None = None
        for attempt in range(self.retry.max_attempts):
            sent = self.limiter.acquire(tokens) if self.limiter else 0.0
            self.stats.add("calls")
            try:
                response = self.client.invoke_model(
                    modelId=self.bedrock_model_id,
                    body=payload,
                    contentType="application/json",
                    accept="application/json",
                )
                parsed = self._parse(response)
                if self.limiter:
                    self.limiter.on_success(sent, tokens)
                return parsed
            except ClientError as exc:
                if not _is_transient(exc):
                    error = exc.response.get("Error", {})
                    raise EmbeddingError(
                        f"Bedrock model {self.bedrock_model_id!r} failed: "
                        f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
                    ) from exc
                error = exc.response.get("Error", {})
                if (
                    error.get("Code") in THROTTLE_CODES
                    or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 429
                ):
                    self.stats.add("throttled")
                    if self.limiter:
                        self.limiter.on_throttle(sent, throttle_kind(str(error.get("Message", ""))))
                last_error = exc
            except _NETWORK_ERRORS as exc:
                last_error = exc
            if attempt + 1 < self.retry.max_attempts:
                self.stats.add("retries")
                self._sleep(self.retry.delay(attempt, self._rng))
        self.stats.add("gave_up")
        raise TransientError(
            f"Bedrock model {self.bedrock_model_id!r} still throttled or unavailable after "
            f"{self.retry.max_attempts} attempts: {last_error}"
        ) from last_error

    def _parse(self, response: Any) -> dict[str, Any]:
        try:
            parsed = json.loads(response["body"].read())
        except (KeyError, ValueError) as exc:
            raise EmbeddingError(f"Bedrock model {self.bedrock_model_id!r} sent an unreadable body") from exc
        if not isinstance(parsed, dict):
            raise EmbeddingError(f"Bedrock model {self.bedrock_model_id!r} sent {type(parsed).__name__}")
        return parsed

    def check_vector(self, vector: Any, dimension: int) -> list[float]:
        if not isinstance(vector, list) or len(vector) != dimension:
            size = len(vector) if isinstance(vector, list) else type(vector).__name__
            raise EmbeddingError(
                f"Bedrock model {self.bedrock_model_id!r} returned a vector of {size}, "
                f"expected {dimension} dimensions"
            )
        return [float(x) for x in vector]


class TitanEmbedder:
    """``bedrock-titan-v2-<dimension>``: one text per InvokeModel call, so calls run on a few
    threads (boto3 clients are thread-safe). Queries and documents are embedded alike."""

    def __init__(
        self,
        dimension: int = 1024,
        *,
        client: Any | None = None,
        region: str | None = None,
        max_workers: int = 4,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        self.spec = titan_spec(dimension)
        self.max_workers = max(1, max_workers)
        self._model = _BedrockModel(
            TITAN_V2_MODEL_ID,
            client,
            region,
            retry,
            sleep,
            rng,
            limiter or default_limiter(TITAN_V2_MODEL_ID, private=sleep is not None),
        )

    @property
    def stats(self) -> CallStats:
        return self._model.stats

    @property
    def limiter(self) -> AdaptiveRateLimiter | None:
        return self._model.limiter

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self.max_workers == 1 or len(texts) <= 1:
            return [self._embed_one(text) for text in texts]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(texts))) as pool:
            futures = [pool.submit(self._embed_one, text) for text in texts]
            return _results_in_order(futures)

    def embed_query(self, text: str) -> list[float]:
        return self._embed_one(text)

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Titan takes one text per call: the queries' calls run on the threads, as documents'."""
        return self.embed_documents(texts)

    def _embed_one(self, text: str) -> list[float]:
        text = text[:TITAN_MAX_CHARS]
        body = {"inputText": text, "dimensions": self.spec.dimension, "normalize": True}
        response = self._model.invoke(body, _TOKENS.count(text))
        return self._model.check_vector(response.get("embedding"), self.spec.dimension)


class CohereEmbedder:
    """``bedrock-cohere-en-v3`` / ``bedrock-cohere-multilingual-v3``: up to 96 texts per call;
    documents and queries get different ``input_type`` tokens, as Cohere asks for retrieval.
    Vectors are L2-normalised here so ``normalized=True`` holds whatever the service returns."""

    def __init__(
        self,
        name: str = "bedrock-cohere-en-v3",
        *,
        client: Any | None = None,
        region: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        self.spec = cohere_spec(name)
        model_id = COHERE_MODEL_IDS[name]
        self._model = _BedrockModel(
            model_id,
            client,
            region,
            retry,
            sleep,
            rng,
            limiter or default_limiter(model_id, private=sleep is not None),
        )

    @property
    def stats(self) -> CallStats:
        return self._model.stats

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), COHERE_MAX_TEXTS):
            vectors.extend(self._embed_batch(texts[start : start + COHERE_MAX_TEXTS], "search_document"))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._embed_batch([text], "search_query")[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), COHERE_MAX_TEXTS):
            vectors.extend(self._embed_batch(texts[start : start + COHERE_MAX_TEXTS], "search_query"))
        return vectors

    def _embed_batch(self, texts: Sequence[str], input_type: str) -> list[list[float]]:
        clipped = [text[:COHERE_MAX_CHARS] for text in texts]
        body = {"texts": clipped, "input_type": input_type, "truncate": "END"}
        response = self._model.invoke(body, sum(_TOKENS.count(text) for text in clipped))
        embeddings = response.get("embeddings")
        if isinstance(embeddings, dict):  # the shape when embedding_types is requested
            embeddings = embeddings.get("float")
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            count = len(embeddings) if isinstance(embeddings, list) else "no"
            raise EmbeddingError(
                f"Bedrock model {self._model.bedrock_model_id!r} returned {count} embeddings "
                f"for {len(texts)} texts"
            )
        checked = [self._model.check_vector(v, self.spec.dimension) for v in embeddings]
        return _l2_normalised(checked)


def _l2_normalised(vectors: list[list[float]]) -> list[list[float]]:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    normalised: list[list[float]] = (matrix / norms).tolist()
    return normalised


def _results_in_order(futures: list[Future[list[float]]]) -> list[list[float]]:
    """Results in submission order. A text still throttled after its retries does not waste the
    others: every call finishes and ``EmbeddingIncomplete`` carries the vectors made. Any other
    failure cancels what has not started."""
    vectors: dict[int, list[float]] = {}
    transient: TransientError | None = None
    try:
        for position, future in enumerate(futures):
            try:
                vectors[position] = future.result()
            except TransientError as exc:
                transient = transient or exc
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    if transient is not None:
        raise EmbeddingIncomplete(
            f"{len(futures) - len(vectors)} of {len(futures)} texts not embedded: {transient}", vectors
        ) from transient
    return [vectors[position] for position in range(len(futures))]
