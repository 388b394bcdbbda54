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


class ApiSearchBody(BaseModel):
    """The search API's JSON body. Who searches comes from the verified identity: ``principal``
    and ``tenant`` are accepted here only so that a caller sending them is told (logged) they
    were ignored, not refused."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    k: int = Field(default=10, ge=1, le=1000)
    filters: dict[str, Any] | None = None
    generation: str | None = None
    principal: str | list[str] | None = Field(default=None, description="ignored: taken from the identity")
    tenant: str | None = Field(default=None, description="ignored: taken from the identity")

    @property
    def ignored_fields(self) -> list[str]:
        return [name for name in ("principal", "tenant") if name in self.model_fields_set]
