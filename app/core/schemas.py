"""The base of every request body: strict about unknown fields, about JSON types, and about what
strings may hold.

JSON types: pydantic's lax mode reads `true` as the integer 1, `"7"` as 7 and `1` as `true`; a
request body says what it means, so an integer field takes a JSON number without a fraction
(`7` or `7.0`, as JSON Schema's `integer`), a number field any JSON number, a boolean field only
`true` or `false`. Text sources (CSV cells, query strings) spell every value as a string: they
validate with `context=TEXT_INPUT` and keep pydantic's conversions.

PostgreSQL text cannot hold U+0000 (asyncpg fails the whole statement), a lone UTF-16 surrogate
cannot be encoded back to UTF-8 when the value is served, and deeply nested JSON exhausts the
serialiser's depth limit. Any of them anywhere in an input — a name, a JSON attribute, a search
term — is a 422 naming the field, never a 500 (and never a stored value that breaks every read).
"""

import types
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

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


# `Model.model_validate(row, context=TEXT_INPUT)`: numbers and booleans may come as strings.
TEXT_INPUT = {"text_input": True}

Scalar = Literal["integer", "number", "boolean", "string"]
_SCALARS: dict[type, Scalar] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _scalars(annotation: Any) -> frozenset[Scalar]:
    """The JSON scalar types a field annotation admits (through Optional, unions, Annotated)."""
    if get_origin(annotation) is Annotated:
        return _scalars(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return frozenset().union(*(_scalars(arg) for arg in get_args(annotation)))
    scalar = _SCALARS.get(annotation) if isinstance(annotation, type) else None
    return frozenset({scalar}) if scalar else frozenset()


def _json_type(value: Any) -> Scalar | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    return "string" if isinstance(value, str) else None


def check_json_scalar(value: Any, accepted: frozenset[Scalar]) -> None:
    """Refuse what pydantic's lax mode would convert: `true` or `"7"` for a number, `1` or
    `"true"` for a boolean. An integer is a number; strings and anything else are pydantic's to
    judge (it never turns a number into a string)."""
    kind = _json_type(value)
    if kind is None or not accepted or kind in accepted or "string" in accepted:
        return
    if kind == "integer" and "number" in accepted:
        return
    expected, code = next(
        (name, code) for scalar, name, code in _PYDANTIC_TYPES if scalar in accepted
    )
    raise PydanticCustomError(code, f"Input should be a valid {expected}")


_PYDANTIC_TYPES = (
    ("integer", "integer", "int_type"),
    ("number", "number", "float_type"),
    ("boolean", "boolean", "bool_type"),
)


class Schema(BaseModel):
    """The base of the API's own models. Each is built (its validator and serializer) the first
    time it is used, not at import: a cold instance builds only what its requests need."""

    model_config = ConfigDict(defer_build=True)


class InputModel(BaseModel):
    """Request bodies: unknown fields, another JSON type than the field's, NUL, lone surrogates
    and deep nesting are 422s.

    Built at import, unlike `Schema`: FastAPI wraps a body's model in an aliased field and
    silences pydantic's warning about that alias only while it builds the field itself; a
    deferred model would build later and log the warning on its first request."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _json_types(cls, value: Any, info: ValidationInfo) -> Any:
        if not (info.context or {}).get("text_input") and info.field_name is not None:
            check_json_scalar(value, _field_scalars(cls, info.field_name))
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _clean_strings(cls, value: Any) -> Any:
        check_json_value(value)
        return value


@cache
def _field_scalars(model: type[BaseModel], name: str) -> frozenset[Scalar]:
    return _scalars(model.model_fields[name].annotation)
