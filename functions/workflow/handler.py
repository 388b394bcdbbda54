"""Placeholder: the rebuild workflow steps replace this handler."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    raise NotImplementedError("workflow handler not written yet")
