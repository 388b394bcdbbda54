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


def external_version(source_version: int, rank: WriteRank) -> int:
    if source_version < 0:
        raise ValueError(f"source version must be >= 0, got {source_version}")
    return source_version * 4 + int(rank)
