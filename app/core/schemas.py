"""The base of every request body: strict about unknown fields and about what strings may hold.

PostgreSQL text cannot hold U+0000 (asyncpg fails the whole statement), a lone UTF-16 surrogate
cannot be encoded back to UTF-8 when the value is served, and deeply nested JSON exhausts the
serialiser's depth limit. Any of them anywhere in an input — a name, a JSON attribute, a search
term — is a 422 naming the field, never a 500 (and never a stored value that breaks every read).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

MAX_JSON_DEPTH = 32


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ValueError for NUL, lone surrogates, or nesting deeper than `max_depth`."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"must not be nested more than {max_depth} levels deep")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)


def clean_text(value: str) -> str:
    _check_text(value)
    return value


CleanStr = Annotated[str, AfterValidator(clean_text)]

# `acct_…`, `key_…` ids in paths: a malformed one is a 422, not a database round trip.
ResourceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class InputModel(BaseModel):
    """Request bodies: unknown fields, NUL, lone surrogates and deep nesting are 422s."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _clean_strings(cls, value: Any) -> Any:
        check_json_value(value)
        return value
