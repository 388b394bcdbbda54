"""BM25 in-process, for local mode's hybrid retrieval (exact mode).

osmem-server scores ``match`` queries with BM25, but it scores every matching doc on each
request: with 20,000 chunks a query of common words took 230 ms (p50) there, far past the
search budget. So the exact cache keeps postings of each index and scores here, with Lucene's
BM25 (``BM25Similarity``, k1 = 1.2, b = 0.75):

    idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))
    score(d) = sum over query terms t of  idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))

with N, n_t, dl and avgdl over the docs of the index (a shard, in OpenSearch's terms). The terms
come from the server's own analyzer: term vectors for the docs, ``_analyze`` for the query, so
stemming and stop words are the index's. Only Lucene's lossy encoding of long doc lengths is
not reproduced, so a score may differ in the last digits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75

TermIds = npt.NDArray[np.int32]


@dataclass
class RowTerms:
    """The analysed terms of one doc: term ids into a shared vocabulary, with frequencies."""

    ids: TermIds
    freqs: npt.NDArray[np.int32]


def encode_terms(freqs: Mapping[str, int], vocabulary: dict[str, int]) -> RowTerms:
    """Term frequencies as ids, extending ``vocabulary`` with new terms."""
    ids = np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in freqs), np.int32, len(freqs))
    return RowTerms(ids, np.fromiter(freqs.values(), np.int32, len(freqs)))


@dataclass
class Bm25Index:
    """Postings of a fixed list of docs, in compressed sparse rows by term."""

    vocabulary: dict[str, int]
    rows: list[RowTerms]
    indptr: npt.NDArray[np.int64] = field(init=False)
    posting_rows: npt.NDArray[np.int64] = field(init=False)
    posting_freqs: npt.NDArray[np.float32] = field(init=False)
    lengths: npt.NDArray[np.float32] = field(init=False)
    average_length: float = field(init=False)

    def __post_init__(self) -> None:
        counts = np.fromiter((len(r.ids) for r in self.rows), np.int64, len(self.rows))
        self.lengths = np.fromiter((int(r.freqs.sum()) for r in self.rows), np.float32, len(self.rows))
        total = float(self.lengths.sum())
        self.average_length = total / len(self.rows) if self.rows and total else 1.0
        if counts.sum() == 0:
            self.indptr = np.zeros(len(self.vocabulary) + 1, dtype=np.int64)
            self.posting_rows = np.zeros(0, dtype=np.int64)
            self.posting_freqs = np.zeros(0, dtype=np.float32)
            return
        terms = np.concatenate([r.ids for r in self.rows if len(r.ids)])
        freqs = np.concatenate([r.freqs for r in self.rows if len(r.ids)])
        owners = np.repeat(np.arange(len(self.rows), dtype=np.int64), counts)
        order = np.argsort(terms, kind="stable")
        self.posting_rows = owners[order]
        self.posting_freqs = freqs[order].astype(np.float32)
        self.indptr = np.zeros(len(self.vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=len(self.vocabulary)), out=self.indptr[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def scores(self, query_terms: Sequence[str]) -> npt.NDArray[np.float32]:
        """BM25 of every row for the analysed query terms (0 where no term matches). A term
        given twice counts twice, as two clauses of a ``match`` query do."""
        result = np.zeros(len(self.rows), dtype=np.float32)
        count = len(self.rows)
        for term, repeats in Counter(query_terms).items():
            term_id = self.vocabulary.get(term)
            if term_id is None:
                continue
            start, end = self.indptr[term_id], self.indptr[term_id + 1]
            if start == end:
                continue
            rows = self.posting_rows[start:end]
            tf = self.posting_freqs[start:end]
            having = float(end - start)
            idf = np.log1p((count - having + 0.5) / (having + 0.5))
            norm = K1 * (1.0 - B + B * self.lengths[rows] / self.average_length)
            result[rows] += np.float32(repeats * idf) * tf / (tf + norm)
        return result
