"""Bedrock embedders against botocore's Stubber: request bodies, batching, retries, errors.

No network: the Stubber answers before any HTTP is attempted.
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import botocore.session
import numpy as np
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from dynembed.core.errors import ConfigError, EmbeddingError, TransientError
from dynembed.embedders.bedrock import (
    COHERE_MAX_CHARS,
    CohereEmbedder,
    RetryPolicy,
    TitanEmbedder,
)

pytestmark = pytest.mark.unit

TITAN = "amazon.titan-embed-text-v2:0"
COHERE_EN = "cohere.embed-english-v3"


class SleepRecorder:
    """Injected instead of time.sleep: records the backoff, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def client() -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def sent_bodies(client: Any) -> list[dict[str, Any]]:
    """Every InvokeModel body the embedder sent, decoded, in order."""
    bodies: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        bodies.append(json.loads(params["body"]))

    client.meta.events.register("before-parameter-build.bedrock-runtime.InvokeModel", capture)
    return bodies


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


def body(payload: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(payload).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


def expect(stubber: Stubber, model: str, payload: dict[str, Any]) -> None:
    stubber.add_response(
        "invoke_model",
        body(payload),
        expected_params={"modelId": model, "body": ANY, "contentType": "application/json", "accept": ANY},
    )


def throttle(stubber: Stubber, code: str = "ThrottlingException", status: int = 429) -> None:
    stubber.add_client_error(
        "invoke_model", service_error_code=code, service_message="slow down", http_status_code=status
    )


def unit(dimension: int, hot: int) -> list[float]:
    vector = [0.0] * dimension
    vector[hot] = 1.0
    return vector


def titan(client: Any, sleep: SleepRecorder, dimension: int = 512, **kwargs: Any) -> TitanEmbedder:
    return TitanEmbedder(dimension, client=client, sleep=sleep, rng=random.Random(7), max_workers=1, **kwargs)


def cohere(client: Any, sleep: SleepRecorder, **kwargs: Any) -> CohereEmbedder:
    return CohereEmbedder(client=client, sleep=sleep, rng=random.Random(7), **kwargs)


class TestTitan:
    def test_one_call_per_text_with_the_documented_body(
        self, client: Any, stubber: Stubber, sent_bodies: list[dict[str, Any]], sleep: SleepRecorder
    ) -> None:
        # GIVEN three texts and a stub answering each call with a different vector
        for hot in range(3):
            expect(stubber, TITAN, {"embedding": unit(512, hot), "inputTextTokenCount": 3})

        # WHEN they are embedded at 512 dimensions
        vectors = titan(client, sleep).embed_documents(["alpha", "beta", "gamma"])

        # THEN three calls went out, each with one text, the dimension and normalisation on
        assert sent_bodies == [
            {"inputText": text, "dimensions": 512, "normalize": True} for text in ["alpha", "beta", "gamma"]
        ]
        # ...and the vectors come back in input order
        assert [int(np.argmax(v)) for v in vectors] == [0, 1, 2]
        assert sleep.delays == []

    def test_query_uses_the_same_body(
        self, client: Any, stubber: Stubber, sent_bodies: list[dict[str, Any]], sleep: SleepRecorder
    ) -> None:
        # GIVEN a stubbed answer / WHEN a query is embedded at 256 dimensions
        expect(stubber, TITAN, {"embedding": unit(256, 5)})
        vector = titan(client, sleep, dimension=256).embed_query("where is it?")

        # THEN Titan sees a plain inputText (it has no query mode)
        assert sent_bodies == [{"inputText": "where is it?", "dimensions": 256, "normalize": True}]
        assert len(vector) == 256

    @pytest.mark.parametrize("dimension", [0, 128, 300, 768, 1536])
    def test_unsupported_dimension_is_a_config_error(self, client: Any, dimension: int) -> None:
        # GIVEN / WHEN a dimension Titan v2 does not offer / THEN it is refused before any call
        with pytest.raises(ConfigError, match="256, 512, 1024"):
            TitanEmbedder(dimension, client=client)

    def test_wrong_response_dimension_is_an_embedding_error(
        self, client: Any, stubber: Stubber, sleep: SleepRecorder
    ) -> None:
        # GIVEN a response with 1024 numbers to a 512-d request
        expect(stubber, TITAN, {"embedding": unit(1024, 0)})

        # WHEN it is embedded / THEN the error names the model and both sizes
        with pytest.raises(EmbeddingError, match=r"titan-embed-text-v2:0.*1024.*expected 512"):
            titan(client, sleep).embed_query("text")

    def test_concurrent_calls_keep_input_order(self) -> None:
        # GIVEN a client whose answer depends on the request, slow enough for threads to overlap
        class EchoClient:
            def __init__(self) -> None:
                self.threads: set[int] = set()

            def invoke_model(self, **request: Any) -> dict[str, Any]:
                self.threads.add(threading.get_ident())
                text = json.loads(request["body"])["inputText"]
                threading.Event().wait(0.01)
                return body({"embedding": unit(256, int(text))})

        echo = EchoClient()
        embedder = TitanEmbedder(256, client=echo, max_workers=4)

        # WHEN 20 texts are embedded on 4 threads
        vectors = embedder.embed_documents([str(i) for i in range(20)])

        # THEN every vector sits at its text's position, and more than one thread did the work
        assert [int(np.argmax(v)) for v in vectors] == list(range(20))
        assert len(echo.threads) > 1


class TestCohere:
    def test_97_documents_take_two_calls(
        self, client: Any, stubber: Stubber, sent_bodies: list[dict[str, Any]], sleep: SleepRecorder
    ) -> None:
        # GIVEN 97 texts: one more than Cohere takes per call
        texts = [f"text {i}" for i in range(97)]
        expect(stubber, COHERE_EN, {"embeddings": [unit(1024, i) for i in range(96)], "id": "a"})
        expect(stubber, COHERE_EN, {"embeddings": [unit(1024, 96)], "id": "b"})

        # WHEN they are embedded as documents
        vectors = cohere(client, sleep).embed_documents(texts)

        # THEN two calls carry 96 and 1 texts, typed as documents, truncated at the end
        assert [len(sent["texts"]) for sent in sent_bodies] == [96, 1]
        assert sent_bodies[0]["texts"] + sent_bodies[1]["texts"] == texts
        assert all(sent["input_type"] == "search_document" for sent in sent_bodies)
        assert all(sent["truncate"] == "END" for sent in sent_bodies)
        # ...and the 97 vectors come back in order
        assert [int(np.argmax(v)) for v in vectors] == list(range(97))

    def test_query_is_typed_as_a_search_query(
        self, client: Any, stubber: Stubber, sent_bodies: list[dict[str, Any]], sleep: SleepRecorder
    ) -> None:
        # GIVEN a stubbed answer / WHEN a query is embedded
        expect(stubber, COHERE_EN, {"embeddings": [unit(1024, 3)]})
        vector = cohere(client, sleep).embed_query("how do I sort?")

        # THEN the query gets Cohere's query input type
        assert sent_bodies == [{"texts": ["how do I sort?"], "input_type": "search_query", "truncate": "END"}]
        assert int(np.argmax(vector)) == 3

    def test_multilingual_model_is_called_by_its_bedrock_id(self, client: Any, sleep: SleepRecorder) -> None:
        # GIVEN the multilingual short id and a stub that expects the multilingual model
        with Stubber(client) as stub:
            expect(stub, "cohere.embed-multilingual-v3", {"embeddings": [unit(1024, 0)]})

            # WHEN a document is embedded / THEN the stub's modelId expectation holds
            embedder = cohere(client, sleep, name="bedrock-cohere-multilingual-v3")
            assert len(embedder.embed_documents(["hola"])[0]) == 1024
            stub.assert_no_pending_responses()

    def test_vectors_are_normalised_and_long_texts_cut(
        self, client: Any, stubber: Stubber, sent_bodies: list[dict[str, Any]], sleep: SleepRecorder
    ) -> None:
        # GIVEN a text longer than Bedrock's 2,048-character limit and an unnormalised answer
        expect(stubber, COHERE_EN, {"embeddings": {"float": [[3.0, 4.0] + [0.0] * 1022]}})

        # WHEN it is embedded
        (vector,) = cohere(client, sleep).embed_documents(["x" * 5000])

        # THEN the request held the first 2,048 characters and the vector has unit length
        assert sent_bodies[0]["texts"] == ["x" * COHERE_MAX_CHARS]
        assert vector[:2] == pytest.approx([0.6, 0.8])

    def test_wrong_embedding_count_is_an_embedding_error(
        self, client: Any, stubber: Stubber, sleep: SleepRecorder
    ) -> None:
        # GIVEN an answer with one embedding for two texts
        expect(stubber, COHERE_EN, {"embeddings": [unit(1024, 0)]})

        # WHEN / THEN the mismatch is an error naming the model, never a shifted result
        with pytest.raises(EmbeddingError, match=r"cohere.embed-english-v3.*1 embeddings for 2 texts"):
            cohere(client, sleep).embed_documents(["a", "b"])

    def test_no_texts_means_no_call(self, client: Any, stubber: Stubber, sleep: SleepRecorder) -> None:
        # GIVEN a stub with no responses queued / WHEN nothing is embedded / THEN nothing is called
        assert cohere(client, sleep).embed_documents([]) == []


class TestRetries:
    @pytest.mark.parametrize(
        ("code", "status"),
        [
            ("ThrottlingException", 429),
            ("ServiceUnavailableException", 503),
            ("ModelNotReadyException", 429),
            ("SomethingNew", 429),
            ("InternalServerException", 500),
            ("ModelTimeoutException", 408),
        ],
    )
    def test_throttled_then_success(
        self, client: Any, stubber: Stubber, sleep: SleepRecorder, code: str, status: int
    ) -> None:
        # GIVEN two transient failures before a success
        throttle(stubber, code, status)
        throttle(stubber, code, status)
        expect(stubber, TITAN, {"embedding": unit(512, 9)})

        # WHEN a text is embedded
        vector = titan(client, sleep).embed_query("text")

        # THEN the third attempt's vector is returned after two backoffs within their caps
        assert int(np.argmax(vector)) == 9
        policy = RetryPolicy()
        assert len(sleep.delays) == 2
        assert all(0.0 <= d <= policy.base_delay_s * 2**i for i, d in enumerate(sleep.delays))

    def test_throttling_exhausted_is_transient(
        self, client: Any, stubber: Stubber, sleep: SleepRecorder
    ) -> None:
        # GIVEN throttling on every one of three allowed attempts
        for _ in range(3):
            throttle(stubber)

        # WHEN a batch is embedded
        embedder = cohere(client, sleep, retry=RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=1.5))
        with pytest.raises(TransientError) as error:
            embedder.embed_documents(["a", "b"])

        # THEN it gives up with a retryable error naming the model, after sleeping between attempts only
        assert "cohere.embed-english-v3" in str(error.value)
        assert "3 attempts" in str(error.value)
        assert len(sleep.delays) == 2
        assert sleep.delays[1] <= 1.5  # capped

    def test_backoff_grows_with_full_jitter(self) -> None:
        # GIVEN the default policy and many draws per attempt
        policy, rng = RetryPolicy(), random.Random(1)

        # WHEN delays are drawn for attempts 0..6
        ceilings = [max(policy.delay(attempt, rng) for _ in range(500)) for attempt in range(7)]

        # THEN the ceiling doubles until the cap, and no draw exceeds the cap
        assert ceilings[1] > ceilings[0] * 1.5
        assert ceilings[3] > ceilings[2] * 1.5
        assert max(ceilings) <= policy.max_delay_s

    @pytest.mark.parametrize(
        ("code", "status"),
        [("ValidationException", 400), ("AccessDeniedException", 403), ("ResourceNotFoundException", 404)],
    )
    def test_other_client_errors_fail_at_once(
        self, client: Any, stubber: Stubber, sleep: SleepRecorder, code: str, status: int
    ) -> None:
        # GIVEN a failure retrying cannot fix
        stubber.add_client_error(
            "invoke_model", service_error_code=code, service_message="nope", http_status_code=status
        )

        # WHEN a text is embedded
        with pytest.raises(EmbeddingError) as error:
            titan(client, sleep).embed_query("text")

        # THEN one attempt, no sleep, a non-transient error naming the model and the code
        assert not isinstance(error.value, TransientError)
        assert TITAN in str(error.value) and code in str(error.value)
        assert sleep.delays == []

    def test_network_errors_are_retried(self, sleep: SleepRecorder) -> None:
        # GIVEN a client that cannot reach the endpoint twice, then answers
        class FlakyClient:
            calls = 0

            def invoke_model(self, **_: Any) -> dict[str, Any]:
                self.calls += 1
                if self.calls < 3:
                    raise EndpointConnectionError(endpoint_url="https://bedrock-runtime")
                return body({"embedding": unit(256, 1)})

        flaky = FlakyClient()

        # WHEN a text is embedded / THEN it succeeds on the third attempt
        vector = TitanEmbedder(256, client=flaky, sleep=sleep).embed_query("text")
        assert (flaky.calls, len(sleep.delays), int(np.argmax(vector))) == (3, 2, 1)

    def test_unreadable_body_is_an_embedding_error(self, sleep: SleepRecorder) -> None:
        # GIVEN a client that answers with something that is not JSON
        class GarbageClient:
            def invoke_model(self, **_: Any) -> dict[str, Any]:
                return {"body": io.BytesIO(b"<html>"), "contentType": "text/html"}

        # WHEN / THEN the error names the model
        with pytest.raises(EmbeddingError, match="unreadable"):
            TitanEmbedder(256, client=GarbageClient(), sleep=sleep).embed_query("text")
