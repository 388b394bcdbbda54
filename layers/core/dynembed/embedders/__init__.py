"""Embedding adapters (the ``Embedder`` port) and the catalog that builds them by short id.

Importing this package loads no model and builds no client; that happens on first use.
"""

from dynembed.embedders.catalog import (
    MODELS_TABLE_COLUMNS,
    ModelInfo,
    available_models,
    embedder_for_spec,
    format_models_table,
    get_embedder,
    known_model_ids,
    spec_for,
)
from dynembed.embedders.counting import CountingEmbedder
from dynembed.embedders.hashing import HashingEmbedder

__all__ = [
    "MODELS_TABLE_COLUMNS",
    "CountingEmbedder",
    "HashingEmbedder",
    "ModelInfo",
    "available_models",
    "embedder_for_spec",
    "format_models_table",
    "get_embedder",
    "known_model_ids",
    "spec_for",
]
