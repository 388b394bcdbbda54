"""The search function's input, validated (the field that is wrong is named)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    principal: str | list[str] = Field(description="user and/or groups the caller acts as")
    k: int = Field(default=10, ge=1, le=1000)
    filters: dict[str, Any] | None = None
    tenant: str | None = None
    generation: str | None = None
