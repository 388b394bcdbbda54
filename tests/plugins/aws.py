"""Fixtures for the local stack: moto (threaded server) + osmem-server + pumps + real handlers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dynembed.core.schema import SourceSchema, TombstoneRule
from dynembed_ops.local.stack import LocalStack

E2E_SCHEMA = SourceSchema(
    metadata_attributes=("category", "kind", "source"),
    tombstone=TombstoneRule(attribute="status", values=("archived",)),
)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """A fresh local stack per test module, with a hash-256 generation active."""
    with LocalStack(schema=E2E_SCHEMA) as stack:
        stack.services().bootstrap("hash-256", generation_id="g-hash")
        yield stack
