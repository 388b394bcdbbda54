"""DynamoDB's capacity rules, from item sizes (Developer Guide: "Item sizes and formats",
"Read/write capacity mode"), so request costs are computed from real items, not guessed.

- An item's size is the sum of its attribute names' and values' sizes: strings and binary by
  their (UTF-8) bytes, numbers about one byte per two significant digits plus one, booleans and
  nulls one byte, lists and maps three bytes plus one per element plus their elements.
- A read request unit covers 4 KB of an item, strongly consistent (half a unit eventually
  consistent), rounded up per item for GetItem/BatchGetItem and once per page of a Query/Scan
  (which pays for every item it *evaluates*, filtered or not). A missing item costs the minimum.
- A write request unit covers 1 KB of the larger of the old and the new item, per item; a
  conditional write that fails still costs it. Transactions cost twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
MAX_NUMBER_BYTES = 21


def _number_size(value: Any) -> int:
    digits = str(value).lstrip("-").replace(".", "").lstrip("0").split("E")[0].split("e")[0]
    return min(MAX_NUMBER_BYTES, math.ceil(max(len(digits), 1) / 2) + 1)


def value_size(value: Any) -> int:
    """Size of a plain Python value as boto3's resource layer reads and writes it."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | float | Decimal):
        return _number_size(value)
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + value_size(v) + 1 for k, v in value.items())
    if isinstance(value, set | frozenset):
        return sum(value_size(v) for v in value)
    if isinstance(value, list | tuple):
        return 3 + sum(value_size(v) + 1 for v in value)
    return len(str(value).encode("utf-8"))


def item_size(item: Mapping[str, Any]) -> int:
    """Size in bytes of a plain item (``{"doc_id": "a", "version": Decimal(3), ...}``)."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def _typed_size(typed: Mapping[str, Any]) -> int:
    ((kind, value),) = typed.items()
    if kind in ("S",):
        return len(str(value).encode("utf-8"))
    if kind == "N":
        return _number_size(value)
    if kind == "B":
        return math.ceil(len(value) * 3 / 4) if isinstance(value, str) else len(value)  # base64 on the wire
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_typed_size({kind[0]: v}) for v in value)
    if kind == "L":
        return 3 + sum(_typed_size(v) + 1 for v in value)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _typed_size(v) + 1 for k, v in value.items())
    return len(str(value).encode("utf-8"))


def typed_item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Size of an item in DynamoDB JSON (``{"doc_id": {"S": "a"}}``), as the wire carries it."""
    return sum(len(name.encode("utf-8")) + _typed_size(value) for name, value in item.items())


def read_units(size: int, consistent: bool = True) -> float:
    """One GetItem (or one item of a BatchGetItem); a missing item (size 0) costs the minimum."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def page_read_units(evaluated_bytes: int, consistent: bool = True) -> float:
    """One Query/Scan page: the evaluated items' total size, rounded up once."""
    return read_units(evaluated_bytes, consistent)


def write_units(size: int) -> float:
    return float(max(1, math.ceil(size / WRITE_UNIT_BYTES)))
