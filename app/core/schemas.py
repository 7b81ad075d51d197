"""The base of every request body: strict about unknown fields and about NUL characters.

PostgreSQL text cannot hold U+0000 (asyncpg fails the whole statement), so a NUL anywhere in an
input string — a name, a JSON attribute, a search term — is a 422 naming the field, never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


CleanStr = Annotated[str, AfterValidator(no_nul)]

# `acct_…`, `key_…` ids in paths: a malformed one is a 422, not a database round trip.
ResourceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class InputModel(BaseModel):
    """Request bodies: unknown fields and NUL characters are validation errors."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _reject_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value
