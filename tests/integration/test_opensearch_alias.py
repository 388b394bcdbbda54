"""Alias promotion on osmem: one atomic ``_aliases`` request, compare-and-swap semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opensearchpy import OpenSearch

from dynembed.core.errors import VersionConflictError
from dynembed.index.opensearch import OpenSearchChunkIndex
from tests.plugins.osmem import generation_for

pytestmark = pytest.mark.integration


class CountingTransport:
    """Wraps the client's transport and records every request (method, path, body)."""

    def __init__(self, client: OpenSearch) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self._perform = client.transport.perform_request

        def perform(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, url, kwargs.get("body")))
            return self._perform(method, url, *args, **kwargs)

        client.transport.perform_request = perform  # type: ignore[method-assign]

    def alias_writes(self) -> list[Any]:
        return [body for method, url, body in self.calls if method == "POST" and url == "/_aliases"]


@pytest.fixture
def setup(
    opensearch_client: OpenSearch, unique_name: Callable[[str], str]
) -> tuple[OpenSearchChunkIndex, str, str, str]:
    index = OpenSearchChunkIndex(opensearch_client)
    blue, green = unique_name("blue"), unique_name("green")
    for name in (blue, green):
        index.ensure_index(generation_for(name))
    return index, unique_name("alias"), blue, green


def test_first_promotion_adds_the_alias(setup: tuple[OpenSearchChunkIndex, str, str, str]) -> None:
    index, alias, blue, _ = setup
    # GIVEN no alias yet
    assert index.alias_target(alias) is None

    # WHEN promoted with no previous target THEN the alias serves blue
    index.swap_alias(alias, blue, None)
    assert index.alias_target(alias) == blue


def test_swap_is_one_aliases_request_with_remove_and_add(
    setup: tuple[OpenSearchChunkIndex, str, str, str], opensearch_client: OpenSearch
) -> None:
    index, alias, blue, green = setup
    index.swap_alias(alias, blue, None)
    transport = CountingTransport(opensearch_client)

    # WHEN blue → green
    index.swap_alias(alias, green, blue)

    # THEN exactly one _aliases request carried both actions, and the alias serves only green
    (body,) = transport.alias_writes()
    actions = body["actions"]
    assert [next(iter(a)) for a in actions] == ["remove", "add"]
    assert actions[0]["remove"]["index"] == blue and actions[1]["add"]["index"] == green
    assert index.alias_target(alias) == green
    assert set(opensearch_client.indices.get_alias(name=alias)) == {green}


def test_rollback_is_the_same_single_swap_backwards(
    setup: tuple[OpenSearchChunkIndex, str, str, str],
) -> None:
    index, alias, blue, green = setup
    index.swap_alias(alias, blue, None)
    index.swap_alias(alias, green, blue)

    index.swap_alias(alias, blue, green)

    assert index.alias_target(alias) == blue


def test_swap_from_the_wrong_index_is_refused_and_changes_nothing(
    setup: tuple[OpenSearchChunkIndex, str, str, str],
    opensearch_client: OpenSearch,
    unique_name: Callable[[str], str],
) -> None:
    index, alias, blue, green = setup
    # GIVEN the alias serves blue
    index.swap_alias(alias, blue, None)
    third = unique_name("third")
    index.ensure_index(generation_for(third))
    transport = CountingTransport(opensearch_client)

    # WHEN a caller believes it serves green, or believes there is no alias yet
    with pytest.raises(VersionConflictError, match=blue):
        index.swap_alias(alias, third, green)
    with pytest.raises(VersionConflictError):
        index.swap_alias(alias, third, None)

    # THEN no _aliases request was sent and the alias still serves blue
    assert transport.alias_writes() == []
    assert index.alias_target(alias) == blue


def test_server_side_guard_fails_the_whole_request_if_the_alias_moved(
    setup: tuple[OpenSearchChunkIndex, str, str, str],
    opensearch_client: OpenSearch,
    unique_name: Callable[[str], str],
) -> None:
    index, alias, blue, green = setup
    third = unique_name("third")
    index.ensure_index(generation_for(third))
    # GIVEN the alias serves green, but the caller's check raced and saw blue (simulated)
    index.swap_alias(alias, green, None)
    index._alias_members = lambda name: {blue: True}  # type: ignore[method-assign]

    # WHEN it swaps blue → third THEN the remove's must_exist fails the whole atomic request
    with pytest.raises(VersionConflictError):
        index.swap_alias(alias, third, blue)

    # AND the alias is untouched: no half-applied add
    assert set(opensearch_client.indices.get_alias(name=alias)) == {green}


def test_repeating_a_completed_swap_is_a_no_op(
    setup: tuple[OpenSearchChunkIndex, str, str, str], opensearch_client: OpenSearch
) -> None:
    index, alias, blue, green = setup
    index.swap_alias(alias, blue, None)
    index.swap_alias(alias, green, blue)
    transport = CountingTransport(opensearch_client)

    # WHEN a retried workflow step repeats the swap THEN it succeeds without a request
    index.swap_alias(alias, green, blue)
    assert transport.alias_writes() == []
    assert index.alias_target(alias) == green
