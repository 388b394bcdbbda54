"""A query-DSL evaluator over stored sources, for servers without a k-NN query (local mode).

The access filter is the same DSL dict native mode puts inside the ``knn`` clause; the exact
scorer applies it to its cached sources as a PRE-filter (a mask before top-k), so k hits come
back whenever k permitted chunks exist, exactly like OpenSearch's efficient filtering. A clause
it cannot evaluate is an error, never ignored: it could be an access rule.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dynembed.core.errors import DynembedError

Mask = npt.NDArray[np.bool_]


class UnsupportedFilterError(DynembedError):
    """The exact scorer met a query clause it cannot evaluate; refusing beats ignoring it,
    since an ignored clause could be an access rule."""


def field_values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """Leaf values at a dotted path, flattening arrays the way OpenSearch indexes them."""
    if "." not in path:  # fast path: acl, tenant and friends are top-level
        value = doc.get(path)
        if value is None:
            return []
        if not isinstance(value, list):
            return [value]
        if not any(isinstance(v, list) or v is None for v in value):
            return value
    current: list[Any] = [doc]
    for part in path.split("."):
        following: list[Any] = []
        for node in current:
            if isinstance(node, Mapping) and part in node:
                value = node[part]
                if isinstance(value, list):
                    following.extend(value)
                else:
                    following.append(value)
        current = following
        if not current:
            return []
    flat: list[Any] = []
    for value in current:
        if isinstance(value, list):
            flat.extend(value)
        elif value is not None:
            flat.append(value)
    return flat


def term_key(value: Any) -> str | None:
    """How a term is compared: as the string OpenSearch would index it, so ``5``, ``5.0`` and
    ``"5"`` agree, and ``True`` matches ``"true"``. Objects cannot be terms (None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def _as_clauses(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise UnsupportedFilterError(f"bool clause must be an object or a list, got {value!r}")


def _single_field(spec: Mapping[str, Any], clause: str) -> tuple[str, Any]:
    fields = [(k, v) for k, v in spec.items() if k not in ("boost", "_name")]
    if len(fields) != 1:
        raise UnsupportedFilterError(f"{clause} needs exactly one field, got {sorted(spec)}")
    return fields[0]


def _minimum_should_match(spec: Mapping[str, Any], n_should: int, has_required: bool) -> int:
    raw = spec.get("minimum_should_match")
    if raw is None:
        return 0 if has_required else 1
    text = str(raw).strip()
    try:
        if text.endswith("%"):
            value = int(n_should * int(text[:-1]) / 100)
            return value if value >= 0 else n_should + value
        value = int(text)
    except ValueError:
        raise UnsupportedFilterError(f"minimum_should_match {raw!r} is not supported") from None
    return value if value >= 0 else n_should + value


class FilterEvaluator:
    """Evaluates a filter DSL dict to a boolean mask over a fixed list of documents.

    Columns (postings per term, numeric values, presence) are built on first use of a field and
    kept, so after the first query per field a ``terms`` filter over 20k docs is a few array ops.
    Supported: bool (filter/must/should/must_not/minimum_should_match), term, terms, exists,
    range on numbers, ids, match_all, match_none, constant_score. Anything else raises
    ``UnsupportedFilterError``.
    """

    def __init__(self, ids: Sequence[str], docs: Sequence[Mapping[str, Any]]) -> None:
        self._ids = ids
        self._docs = docs
        self.size = len(docs)
        self._postings: dict[str, dict[str, npt.NDArray[np.int64]]] = {}
        self._numbers: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        self._present: dict[str, Mask] = {}
        self._row_of_id: dict[str, int] | None = None
        self._lock = threading.Lock()

    def mask(self, query: Mapping[str, Any] | None) -> Mask:
        if not query:
            return np.ones(self.size, dtype=bool)
        if len(query) != 1:
            raise UnsupportedFilterError(f"a query clause has exactly one key, got {sorted(query)}")
        ((kind, spec),) = query.items()
        handler = getattr(self, f"_q_{kind}", None)
        if handler is None:
            raise UnsupportedFilterError(f"exact k-NN cannot evaluate query clause {kind!r}")
        result: Mask = handler(spec)
        return result

    # -- clauses --------------------------------------------------------------------------------

    def _q_match_all(self, spec: Mapping[str, Any]) -> Mask:
        return np.ones(self.size, dtype=bool)

    def _q_match_none(self, spec: Mapping[str, Any]) -> Mask:
        return np.zeros(self.size, dtype=bool)

    def _q_constant_score(self, spec: Mapping[str, Any]) -> Mask:
        return self.mask(spec.get("filter"))

    def _q_bool(self, spec: Mapping[str, Any]) -> Mask:
        unknown = set(spec) - {
            "filter",
            "must",
            "should",
            "must_not",
            "minimum_should_match",
            "boost",
            "_name",
        }
        if unknown:
            raise UnsupportedFilterError(f"bool does not support {sorted(unknown)}")
        result = np.ones(self.size, dtype=bool)
        required = _as_clauses(spec.get("filter")) + _as_clauses(spec.get("must"))
        for clause in required:
            result &= self.mask(clause)
        for clause in _as_clauses(spec.get("must_not")):
            result &= ~self.mask(clause)
        should = _as_clauses(spec.get("should"))
        if should:
            needed = _minimum_should_match(spec, len(should), bool(required))
            if needed > 0:
                hits = np.zeros(self.size, dtype=np.int32)
                for clause in should:
                    hits += self.mask(clause)
                result &= hits >= needed
        return result

    def _q_term(self, spec: Mapping[str, Any]) -> Mask:
        path, value = _single_field(spec, "term")
        if isinstance(value, Mapping):
            if set(value) - {"value", "boost", "_name"}:
                raise UnsupportedFilterError(f"term on {path!r} does not support {sorted(value)}")
            value = value.get("value")
        return self._rows_with_any(path, [value])

    def _q_terms(self, spec: Mapping[str, Any]) -> Mask:
        path, values = _single_field(spec, "terms")
        if not isinstance(values, list | tuple):
            raise UnsupportedFilterError(f"terms on {path!r} needs a list of values (lookups unsupported)")
        return self._rows_with_any(path, values)

    def _q_exists(self, spec: Mapping[str, Any]) -> Mask:
        path = spec.get("field")
        if not isinstance(path, str):
            raise UnsupportedFilterError(f"exists needs a field name, got {spec!r}")
        present = self._present.get(path)
        if present is None:
            present = np.fromiter((bool(field_values(d, path)) for d in self._docs), bool, self.size)
            self._present[path] = present
        return present.copy()

    def _q_range(self, spec: Mapping[str, Any]) -> Mask:
        path, bounds = _single_field(spec, "range")
        if not isinstance(bounds, Mapping):
            raise UnsupportedFilterError(f"range on {path!r} needs an object of bounds")
        unknown = set(bounds) - {"gt", "gte", "lt", "lte", "boost"}
        if unknown:
            raise UnsupportedFilterError(f"range on {path!r} does not support {sorted(unknown)}")
        rows, values = self._numeric(path)
        keep = np.ones(values.shape[0], dtype=bool)
        for op, bound in bounds.items():
            if op == "boost":
                continue
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise UnsupportedFilterError(f"range on {path!r}: only numeric bounds, got {bound!r}")
            if op == "gt":
                keep &= values > bound
            elif op == "gte":
                keep &= values >= bound
            elif op == "lt":
                keep &= values < bound
            else:
                keep &= values <= bound
        result = np.zeros(self.size, dtype=bool)
        result[rows[keep]] = True
        return result

    def _q_ids(self, spec: Mapping[str, Any]) -> Mask:
        values = spec.get("values")
        if not isinstance(values, list | tuple):
            raise UnsupportedFilterError(f"ids needs a list of values, got {spec!r}")
        if self._row_of_id is None:
            self._row_of_id = {doc_id: row for row, doc_id in enumerate(self._ids)}
        result = np.zeros(self.size, dtype=bool)
        rows = [self._row_of_id[v] for v in values if v in self._row_of_id]
        result[rows] = True
        return result

    # -- columns ----------------------------------------------------------------------------------

    def _rows_with_any(self, path: str, values: Iterable[Any]) -> Mask:
        postings = self._term_postings(path)
        result = np.zeros(self.size, dtype=bool)
        for value in values:
            key = term_key(value)
            if key is None:
                raise UnsupportedFilterError(f"term value on {path!r} must be a scalar, got {value!r}")
            rows = postings.get(key)
            if rows is not None:
                result[rows] = True
        return result

    def _term_postings(self, path: str) -> dict[str, npt.NDArray[np.int64]]:
        postings = self._postings.get(path)
        if postings is None:
            with self._lock:
                collected: dict[str, list[int]] = {}
                for row, doc in enumerate(self._docs):
                    for value in field_values(doc, path):
                        key = term_key(value)
                        if key is not None:
                            collected.setdefault(key, []).append(row)
                postings = {k: np.asarray(v, dtype=np.int64) for k, v in collected.items()}
                self._postings[path] = postings
        return postings

    def _numeric(self, path: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        column = self._numbers.get(path)
        if column is None:
            rows: list[int] = []
            values: list[float] = []
            for row, doc in enumerate(self._docs):
                for value in field_values(doc, path):
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        rows.append(row)
                        values.append(float(value))
            column = (np.asarray(rows, dtype=np.int64), np.asarray(values, dtype=np.float64))
            self._numbers[path] = column
        return column
