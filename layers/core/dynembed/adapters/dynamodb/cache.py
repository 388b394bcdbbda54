"""The embedding cache on DynamoDB: (model id, content hash) → vector, as float32 bytes
(1.5 KB for 384-d, well under the 400 KB item limit)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from dynembed.adapters.dynamodb.tables import bind


class EmbeddingCacheModel(Model):
    """(model id, content hash) → float32 vector."""

    class Meta:
        table_name = "dynembed-embedding-cache"

    cache_key = UnicodeAttribute(hash_key=True)
    vector = BinaryAttribute(legacy_encoding=False)
    created_at = NumberAttribute()


class DynamoEmbeddingCache:
    def __init__(self, table_name: str, *, region: str, host: str | None = None) -> None:
        self.model = bind(EmbeddingCacheModel, table_name, region, host)

    @staticmethod
    def _key(model_id: str, content_hash: str) -> str:
        return f"{model_id}#{content_hash}"

    def get_many(self, model_id: str, content_hashes: Sequence[str]) -> dict[str, list[float]]:
        wanted = {self._key(model_id, h): h for h in dict.fromkeys(content_hashes)}
        found: dict[str, list[float]] = {}
        if not wanted:
            return found
        for row in self.model.batch_get(list(wanted)):
            found[wanted[row.cache_key]] = np.frombuffer(row.vector, dtype=np.float32).astype(float).tolist()
        return found

    def put_many(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None:
        now = time.time()
        with self.model.batch_write() as batch:
            for content_hash, vector in vectors.items():
                batch.save(
                    self.model(
                        self._key(model_id, content_hash),
                        vector=np.asarray(vector, dtype=np.float32).tobytes(),
                        created_at=now,
                    )
                )
