"""Each port's fixture is parametrised over its implementations: the in-memory fake (marked
``unit``) and the real adapter (marked ``integration``: DynamoDB and SQS on moto, the index on
osmem-server). Every test in ``tests/contract/`` therefore runs on both, so a fake that stops
behaving like its adapter fails the same test its adapter passes.

The real backends are asked for through ``request.getfixturevalue`` only for the real
parameter, so a fake run never starts moto or osmem (the unit guard would fail it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dynembed.core.models import ReconcileJob
from dynembed.core.ports import (
    ChunkIndex,
    DeadLetters,
    EmbeddingCache,
    HeldJobs,
    JobQueue,
    Ledger,
    Registry,
    SourceReader,
)
from tests.fakes import (
    InMemoryCache,
    InMemoryDeadLetters,
    InMemoryHeldJobs,
    InMemoryIndex,
    InMemoryLedger,
    InMemoryProgressStore,
    InMemoryQueue,
    InMemoryRegistry,
    InMemorySource,
    _decimals,
)

FAKE = pytest.param("fake", id="fake", marks=pytest.mark.unit)
DYNAMODB = pytest.param("dynamodb", id="dynamodb", marks=pytest.mark.integration)
SQS = pytest.param("sqs", id="sqs", marks=pytest.mark.integration)
OPENSEARCH = pytest.param("osmem", id="osmem", marks=pytest.mark.integration)


def _moto(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("moto_aws")


@pytest.fixture(params=[FAKE, DYNAMODB])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    if request.param == "fake":
        return InMemoryLedger()
    from dynembed.adapters.dynamodb.ledger import DynamoLedger

    moto = _moto(request)
    return DynamoLedger(moto.table("doc_id", "generation"), region=moto.region)


@pytest.fixture(params=[FAKE, DYNAMODB])
def registry(request: pytest.FixtureRequest) -> Registry:
    if request.param == "fake":
        return InMemoryRegistry()
    from dynembed.adapters.dynamodb.registry import DynamoRegistry

    moto = _moto(request)
    return DynamoRegistry(moto.table("generation_id"), region=moto.region)


@pytest.fixture(params=[FAKE, DYNAMODB])
def cache(request: pytest.FixtureRequest) -> EmbeddingCache:
    if request.param == "fake":
        return InMemoryCache()
    from dynembed.adapters.dynamodb.cache import DynamoEmbeddingCache

    moto = _moto(request)
    return DynamoEmbeddingCache(moto.table("cache_key"), region=moto.region)


@pytest.fixture(params=[FAKE, DYNAMODB])
def held(request: pytest.FixtureRequest) -> HeldJobs:
    if request.param == "fake":
        return InMemoryHeldJobs()
    from dynembed.adapters.dynamodb.held_jobs import DynamoHeldJobs

    moto = _moto(request)
    return DynamoHeldJobs(moto.table("doc_id"), region=moto.region)


@dataclass
class SourceTable:
    """The reader under test plus the source app's writes (which are not part of the port)."""

    reader: SourceReader
    put: Callable[[dict[str, Any]], None]
    delete: Callable[[str], None]


@pytest.fixture(params=[FAKE, DYNAMODB])
def source(request: pytest.FixtureRequest) -> SourceTable:
    if request.param == "fake":
        fake = InMemorySource()
        return SourceTable(
            fake,
            put=lambda item: fake.items.__setitem__(item["doc_id"], dict(item)),
            delete=lambda doc_id: fake.items.__delitem__(doc_id),
        )
    import boto3

    from dynembed.adapters.dynamodb.source import DynamoSourceReader

    moto = _moto(request)
    table = boto3.resource("dynamodb", region_name=moto.region).Table(moto.table("doc_id"))
    return SourceTable(
        DynamoSourceReader(table.name, "doc_id", region=moto.region),
        put=lambda item: table.put_item(Item=_decimals(item)),
        delete=lambda doc_id: table.delete_item(Key={"doc_id": doc_id}) and None,
    )


@dataclass
class QueueUnderTest:
    queue: JobQueue
    received: Callable[[], list[ReconcileJob]]
    """Everything delivered so far (and not returned before), in no particular order."""


@pytest.fixture(params=[FAKE, SQS])
def queue(request: pytest.FixtureRequest) -> QueueUnderTest:
    if request.param == "fake":
        fake = InMemoryQueue()

        def drain_fake() -> list[ReconcileJob]:
            out, fake.sent = fake.sent, []
            return out

        return QueueUnderTest(fake, drain_fake)
    from dynembed.adapters.sqs import SqsJobQueue

    moto = _moto(request)
    url = moto.queue()
    return QueueUnderTest(
        SqsJobQueue(url, moto.client("sqs")),
        lambda: [ReconcileJob.model_validate_json(m["Body"]) for m in moto.receive_all(url)],
    )


@dataclass
class DeadLettersUnderTest:
    dead_letters: DeadLetters
    received: Callable[[], list[dict[str, Any]]]


@pytest.fixture(params=[FAKE, SQS])
def dead_letters(request: pytest.FixtureRequest) -> DeadLettersUnderTest:
    if request.param == "fake":
        fake = InMemoryDeadLetters()
        return DeadLettersUnderTest(fake, lambda: list(fake.bodies))
    import json

    from dynembed.adapters.sqs import SqsDeadLetters

    moto = _moto(request)
    url = moto.queue()
    return DeadLettersUnderTest(
        SqsDeadLetters(url, moto.client("sqs")),
        lambda: [json.loads(m["Body"]) for m in moto.receive_all(url)],
    )


@dataclass
class IndexUnderTest:
    index: ChunkIndex
    name: Callable[[str], str]
    """A fresh index (or alias) name, cleaned up after the test."""
    real: bool = False


@pytest.fixture(params=[FAKE, OPENSEARCH])
def index(request: pytest.FixtureRequest) -> Iterator[IndexUnderTest]:
    if request.param == "fake":
        counter = iter(range(1_000_000))
        yield IndexUnderTest(InMemoryIndex(), lambda prefix: f"{prefix}-{next(counter)}")
        return
    from dynembed.index.opensearch import OpenSearchChunkIndex

    # osmem answers no native knn query; exact mode is the adapter's own pre-filtered k-NN.
    client = request.getfixturevalue("opensearch_client")
    unique_name = request.getfixturevalue("unique_name")
    yield IndexUnderTest(
        OpenSearchChunkIndex(client, knn_mode="exact", sleep=lambda s: None), unique_name, True
    )


@dataclass
class ProgressUnderTest:
    store: Any
    """A ProgressStore (dynembed.rebuild.progress)."""
    registry: Registry


@pytest.fixture(params=[FAKE, DYNAMODB])
def progress(request: pytest.FixtureRequest) -> ProgressUnderTest:
    if request.param == "fake":
        fake = InMemoryRegistry()
        return ProgressUnderTest(InMemoryProgressStore(fake), fake)
    from dynembed.adapters.dynamodb.registry import DynamoProgressStore, DynamoRegistry

    moto = _moto(request)
    table = moto.table("generation_id")
    return ProgressUnderTest(
        DynamoProgressStore(table, region=moto.region), DynamoRegistry(table, region=moto.region)
    )


@dataclass
class SqsUnderTest:
    client: Any
    """The boto3 SQS client surface the flows call directly (send_message, get_queue_attributes)."""
    url: str
    bodies: Callable[[], list[tuple[str, dict[str, Any]]]]
    """What the queue holds: (body, message attributes) per message."""


@pytest.fixture(params=[FAKE, SQS])
def sqs(request: pytest.FixtureRequest) -> SqsUnderTest:
    from tests.fakes import InMemorySqsClient

    if request.param == "fake":
        fake, url = InMemorySqsClient(), "https://sqs.test/q"
        return SqsUnderTest(fake, url, lambda: [(m.body, m.attributes) for m in fake.sent_to(url)])
    moto = _moto(request)
    url = moto.queue()

    def peek() -> list[tuple[str, dict[str, Any]]]:
        messages = (
            moto.client("sqs")
            .receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
            )
            .get("Messages", [])
        )
        return [(m["Body"], m.get("MessageAttributes", {})) for m in messages]

    return SqsUnderTest(moto.client("sqs"), url, peek)
