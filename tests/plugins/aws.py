"""Fixtures for the local stack: moto (threaded server) + osmem-server + pumps + real handlers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dynembed.embedders.catalog import spec_for
from dynembed.generations import bootstrap, new_generation
from dynembed.local.stack import LocalStack
from dynembed.models import ChunkerSpec
from dynembed.schema import SourceSchema, TombstoneRule

E2E_SCHEMA = SourceSchema(
    metadata_attributes=("category", "kind", "source"),
    tombstone=TombstoneRule(attribute="status", values=("archived",)),
)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """A fresh local stack per test module, with a hash-256 generation active."""
    with LocalStack(schema=E2E_SCHEMA) as stack:
        svc = stack.services()
        gen = new_generation(
            spec_for("hash-256"), ChunkerSpec(), svc.settings.index_prefix, generation_id="g-hash"
        )
        bootstrap(svc.registry, svc.index, svc.settings.index_alias, gen)
        yield stack
