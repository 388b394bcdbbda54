"""Bedrock embedders over real HTTP, against a fake bedrock-runtime endpoint on localhost.

The Stubber unit tests check what is sent; these check what only the full botocore stack shows:
the URL, error codes parsed from real HTTP responses, and that the default client's own retries
are off, so our attempts do not multiply with botocore's.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from dynembed.core.errors import EmbeddingError, TransientError
from dynembed.embedders.bedrock import CohereEmbedder, RetryPolicy, TitanEmbedder, default_bedrock_client

pytestmark = pytest.mark.integration


@dataclass
class Reply:
    status: int
    payload: dict[str, Any]
    error_type: str | None = None


@dataclass
class FakeBedrock:
    """Answers InvokeModel with queued replies and records every request it receives."""

    url: str
    replies: queue.Queue[Reply] = field(default_factory=queue.Queue)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def reply(self, status: int, payload: dict[str, Any], error_type: str | None = None) -> None:
        self.replies.put(Reply(status, payload, error_type))


@pytest.fixture
def fake_bedrock() -> Iterator[FakeBedrock]:
    fake: FakeBedrock

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            fake.requests.append((unquote(self.path), json.loads(self.rfile.read(length))))
            reply = fake.replies.get_nowait()
            data = json.dumps(reply.payload).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if reply.error_type:
                self.send_header("x-amzn-ErrorType", f"{reply.error_type}:http://internal.amazon.com/")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeBedrock(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def client_for(fake: FakeBedrock) -> Any:
    return default_bedrock_client(region="us-east-1", endpoint_url=fake.url)


def no_sleep(_: float) -> None:
    pass


def test_titan_request_reaches_the_model_url(fake_bedrock: FakeBedrock) -> None:
    # GIVEN an endpoint that answers with a 256-d vector
    fake_bedrock.reply(200, {"embedding": [0.0625] * 256, "inputTextTokenCount": 2})

    # WHEN a query is embedded through the default client
    vector = TitanEmbedder(256, client=client_for(fake_bedrock)).embed_query("hello world")

    # THEN InvokeModel hit the Titan model's path with the documented body
    assert fake_bedrock.requests == [
        (
            "/model/amazon.titan-embed-text-v2:0/invoke",
            {"inputText": "hello world", "dimensions": 256, "normalize": True},
        )
    ]
    assert vector == [0.0625] * 256


def test_one_throttle_costs_exactly_one_extra_request(fake_bedrock: FakeBedrock) -> None:
    # GIVEN a 429 ThrottlingException, then success
    fake_bedrock.reply(429, {"message": "Too many requests"}, "ThrottlingException")
    fake_bedrock.reply(200, {"embeddings": [[1.0] + [0.0] * 1023]})

    # WHEN a document is embedded
    embedder = CohereEmbedder(client=client_for(fake_bedrock), sleep=no_sleep)
    (vector,) = embedder.embed_documents(["a passage"])

    # THEN the endpoint saw two requests: ours, not botocore's hidden retries on top
    assert len(fake_bedrock.requests) == 2
    assert fake_bedrock.requests[0][0] == "/model/cohere.embed-english-v3/invoke"
    assert fake_bedrock.requests[1][1]["input_type"] == "search_document"
    assert vector[0] == pytest.approx(1.0)


def test_persistent_throttling_makes_exactly_max_attempts_requests(fake_bedrock: FakeBedrock) -> None:
    # GIVEN an endpoint that throttles every request
    for _ in range(10):
        fake_bedrock.reply(429, {"message": "Too many requests"}, "ThrottlingException")

    # WHEN a text is embedded with three attempts allowed
    embedder = TitanEmbedder(
        256, client=client_for(fake_bedrock), sleep=no_sleep, retry=RetryPolicy(max_attempts=3)
    )
    with pytest.raises(TransientError, match="3 attempts"):
        embedder.embed_query("text")

    # THEN exactly three requests were made
    assert len(fake_bedrock.requests) == 3


def test_validation_error_carries_the_service_message(fake_bedrock: FakeBedrock) -> None:
    # GIVEN an endpoint that rejects the request as invalid
    fake_bedrock.reply(400, {"message": "Malformed input request"}, "ValidationException")

    # WHEN a text is embedded
    embedder = TitanEmbedder(256, client=client_for(fake_bedrock), sleep=no_sleep)
    with pytest.raises(EmbeddingError) as error:
        embedder.embed_query("text")

    # THEN one request, and an error naming the model, the code and the service's reason
    assert len(fake_bedrock.requests) == 1
    assert not isinstance(error.value, TransientError)
    message = str(error.value)
    assert "amazon.titan-embed-text-v2:0" in message
    assert "ValidationException" in message
    assert "Malformed input request" in message
