"""The search index adapter: OpenSearch (native k-NN) and exact k-NN for servers without it."""

from dynembed.index.errors import BulkThrottledError, BulkWriteError, ItemFailure
from dynembed.index.exact import ExactKnnCache
from dynembed.index.filter_eval import UnsupportedFilterError
from dynembed.index.filters import access_filter, knn_query
from dynembed.index.mapping import index_body
from dynembed.index.opensearch import OpenSearchChunkIndex, build_client

__all__ = [
    "BulkThrottledError",
    "BulkWriteError",
    "ExactKnnCache",
    "ItemFailure",
    "OpenSearchChunkIndex",
    "UnsupportedFilterError",
    "access_filter",
    "build_client",
    "index_body",
    "knn_query",
]
