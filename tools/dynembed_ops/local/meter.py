"""What the local stack's pipeline really asks of AWS, counted where the requests arrive.

- moto's WSGI app is wrapped: every DynamoDB, Streams, SQS and Step Functions request is counted
  by operation. moto's own ``ConsumedCapacity`` is a constant, so read and write units are
  computed from the items themselves (``dynembed.cost.capacity``): the stored item's size before
  and after each write, as moto holds it, and the size of what each read returns (a Scan or
  Query page is charged for what it evaluated: the returned items scaled by
  ``ScannedCount / Count``).
- Lambda invocations and durations: an observer on the local Lambda runtime (every handler
  call, the workflow's too).
- OpenSearch: the index adapter's transport, so requests and bulk items are counted per call.
- Embedding: a counting embedder in the shared services (texts, characters, tokens).

The meter can be paused while a test or benchmark plays the *source application* (its own
writes are not the pipeline's cost).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from dynembed.core.errors import ConfigError
from dynembed.cost.capacity import page_read_units, read_units, typed_item_size, write_units
from dynembed_ops.local import lambda_runtime

SQS_REQUEST_BYTES = 64 * 1024
"""SQS bills each 64 KB chunk of a request as one request."""
ACCOUNT = "123456789012"


class RequestMeter:
    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self.requests: Counter[str] = Counter()
        """``service.Operation`` → calls."""
        self.units: dict[str, float] = defaultdict(float)
        """dynamodb_rru, dynamodb_wru, sqs_requests (billed chunks), sqs_empty_receives,
        lambda_<fn>_invocations / _ms / _records, opensearch_requests, opensearch_bulk_items."""

    # ---- control ------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.units.clear()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Requests made inside are not counted (the source application's own writes)."""
        self._paused.set()
        try:
            yield
        finally:
            self._paused.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "units": {k: round(v, 3) for k, v in self.units.items()}}

    def _add(self, key: str, value: float = 1.0) -> None:
        with self._lock:
            self.units[key] += value

    # ---- installation -----------------------------------------------------------------------------
    def install(self, stack: Any) -> RequestMeter:
        """Wrap the running stack's moto server, its Lambda runtime and its index client."""
        if getattr(stack, "_dynamodb", None) is not None:
            raise ConfigError(
                "the request meter sizes DynamoDB writes from moto's tables in this process: "
                "start the stack with LocalStack(dynamodb_process=False)"
            )
        server = stack._moto._server
        server.app = self.wsgi(server.app)
        lambda_runtime.add_invoke_observer(self._on_invoke)
        self.watch_index(stack.services().index)
        return self

    def uninstall(self) -> None:
        lambda_runtime.remove_invoke_observer(self._on_invoke)

    # ---- Lambda -----------------------------------------------------------------------------------
    def _on_invoke(self, name: str, event: dict[str, Any], duration_s: float) -> None:
        if self._paused.is_set():
            return
        self._add(f"lambda_{name}_invocations")
        self._add(f"lambda_{name}_ms", duration_s * 1000.0)
        self._add(f"lambda_{name}_records", len(event.get("Records") or []))

    # ---- OpenSearch -------------------------------------------------------------------------------
    def watch_index(self, index: Any) -> None:
        transport = index._client.transport
        if getattr(transport, "_dynembed_metered", False):
            return
        original = transport.perform_request

        def perform_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if not self._paused.is_set():
                self._add("opensearch_requests")
                if url.rstrip("/").endswith("_bulk"):
                    body = kwargs.get("body", args[1] if len(args) > 1 else None)
                    self._add("opensearch_bulk_items", _bulk_actions(body))
            return original(method, url, *args, **kwargs)

        transport.perform_request = perform_request
        transport._dynembed_metered = True

    # ---- AWS (moto) -------------------------------------------------------------------------------
    def wsgi(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def metered(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if self._paused.is_set():
                return app(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            service, _, operation = target.partition(".")
            request = _json(body)
            before = self._sizes_before(service, operation, request)
            chunks = list(app(environ, start_response))
            try:
                self._account(service, operation, request, _json(b"".join(chunks)), before, len(body))
            except Exception as exc:  # a metering bug must never break the pipeline under test
                self._add(f"meter_errors[{type(exc).__name__}]")
            return chunks

        return metered

    def _table(self, name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[ACCOUNT][self.region].get_table(name)

    def _stored_size(self, table_name: str, key_or_item: dict[str, Any]) -> int:
        table = self._table(table_name)
        key = {table.hash_key_attr: key_or_item[table.hash_key_attr]}
        if table.range_key_attr:
            key[table.range_key_attr] = key_or_item[table.range_key_attr]
        from moto.dynamodb.models import dynamodb_backends

        item = dynamodb_backends[ACCOUNT][self.region].get_item(table_name, key)
        return int(item.size()) if item is not None else 0

    def _writes(
        self, operation: str, request: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any], int | None]]:
        """(table, key or item, new size or None for "read it after") per written item."""
        if operation == "PutItem":
            return [(request["TableName"], request["Item"], typed_item_size(request["Item"]))]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(request["TableName"], request["Key"], None if operation == "UpdateItem" else 0)]
        if operation == "BatchWriteItem":
            out: list[tuple[str, dict[str, Any], int | None]] = []
            for table, writes in request.get("RequestItems", {}).items():
                for write in writes:
                    if "PutRequest" in write:
                        item = write["PutRequest"]["Item"]
                        out.append((table, item, typed_item_size(item)))
                    else:
                        out.append((table, write["DeleteRequest"]["Key"], 0))
            return out
        if operation == "TransactWriteItems":
            out = []
            for entry in request.get("TransactItems", []):
                for kind, spec in entry.items():
                    if kind == "Put":
                        out.append((spec["TableName"], spec["Item"], typed_item_size(spec["Item"])))
                    elif kind in ("Update", "Delete", "ConditionCheck"):
                        out.append((spec["TableName"], spec["Key"], None if kind == "Update" else 0))
            return out
        return []

    def _sizes_before(self, service: str, operation: str, request: dict[str, Any]) -> list[int]:
        if not service.startswith("DynamoDB_"):
            return []
        return [self._stored_size(table, key) for table, key, _ in self._writes(operation, request)]

    def _account(
        self,
        service: str,
        operation: str,
        request: dict[str, Any],
        response: dict[str, Any],
        before: list[int],
        request_bytes: int,
    ) -> None:
        if not service:
            return
        name = service.split("_")[0]
        with self._lock:
            self.requests[f"{name}.{operation}"] += 1
        if service.startswith("DynamoDB_"):
            self._dynamodb(operation, request, response, before)
        elif service == "AmazonSQS":
            if operation == "ReceiveMessage" and not response.get("Messages"):
                self._add("sqs_empty_receives")
            else:
                self._add("sqs_requests", max(1, math.ceil(request_bytes / SQS_REQUEST_BYTES)))

    def _dynamodb(
        self, operation: str, request: dict[str, Any], response: dict[str, Any], before: list[int]
    ) -> None:
        factor = 2.0 if operation.startswith("Transact") else 1.0
        writes = self._writes(operation, request)
        if writes:
            for (table, key, after), old in zip(writes, before, strict=True):
                new = self._stored_size(table, key) if after is None else after
                self._add("dynamodb_wru", factor * write_units(max(old, new)))
            return
        consistent = bool(request.get("ConsistentRead"))
        if operation == "GetItem":
            size = self._stored_size(request["TableName"], request["Key"])
            self._add("dynamodb_rru", read_units(size, consistent))
        elif operation == "BatchGetItem":
            for table, spec in request.get("RequestItems", {}).items():
                for key in spec.get("Keys", []):
                    self._add(
                        "dynamodb_rru",
                        read_units(self._stored_size(table, key), bool(spec.get("ConsistentRead"))),
                    )
        elif operation in ("Scan", "Query"):
            items = response.get("Items") or []
            returned = sum(typed_item_size(item) for item in items)
            count, scanned = (
                int(response.get("Count", len(items))),
                int(response.get("ScannedCount", len(items))),
            )
            evaluated = (
                returned * scanned / count if count else scanned * self._mean_size(request["TableName"])
            )
            self._add("dynamodb_rru", page_read_units(int(evaluated), consistent))

    def _mean_size(self, table_name: str) -> float:
        table = self._table(table_name)
        sizes = [item.size() for item in table.all_items()]
        return sum(sizes) / len(sizes) if sizes else 0.0


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _bulk_actions(body: Any) -> int:
    if body is None:
        return 0
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
    actions = 0
    for line in text.splitlines():
        if (
            line.startswith('{"index"')
            or line.startswith('{"delete"')
            or line.startswith('{"update"')
            or line.startswith('{"create"')
        ):
            actions += 1
    return actions
