"""External versions for index writes.

Every chunk write carries an OpenSearch external version derived from the source version, so the
index itself refuses anything older than what it holds (I2, I3). Three kinds of write can happen
at one source version: an attribute patch (access/metadata fast path), a content write, and a
delete. Encoding ``version * 4 + rank`` orders them within a version (patch < content < delete)
and keeps every write of version v above every write of version v-1:

- a late patch of v-1 never overwrites a chunk written at v;
- a content write at v wins over the patch of v that raced it (it carries the same attributes);
- deleting an obsolete chunk at v succeeds even if the patch of v touched it first;
- a doc deleted at v and recreated at v+1 is written again.
"""

from __future__ import annotations

from enum import IntEnum


class WriteRank(IntEnum):
    PATCH = 1
    CONTENT = 2
    DELETE = 3


MAX_EXTERNAL_VERSION = 2**63 - 1
"""OpenSearch external versions are Java longs."""
MAX_SOURCE_VERSION = (MAX_EXTERNAL_VERSION - max(WriteRank)) // 4
"""The largest source version whose every write still fits an external version: 2**61 - 1
(2,305,843,009,213,693,951). The source schema refuses anything above it."""


def external_version(source_version: int, rank: WriteRank) -> int:
    if not 0 <= source_version <= MAX_SOURCE_VERSION:
        raise ValueError(f"source version must be in 0..{MAX_SOURCE_VERSION}, got {source_version}")
    return source_version * 4 + int(rank)
