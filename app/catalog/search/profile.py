"""What search has learned of the catalog: its categories and attributes, with their values.

Query understanding (app/catalog/search/understand.py) reads constraints from words only where the
catalog has them: `size 10` is a condition because `size` is a numeric attribute, `16gb` because
attributes end in `_gb`, `red` a boost because `color` has the value `red`. The facts come from
`search_attributes` (migration 0012, kept exact by the upsert path), read once per `TTL_SECONDS`
per database engine and at once after a local write changed them; another instance's write shows
within `TTL_SECONDS`. Only the `MAX_FACTS` most common rows are read: identifiers (GTINs) are
never stored, and a value held by few products among very many is not worth reading from words.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.search import repository as repo
from app.catalog.search.text import CATEGORY_FACT, words

TTL_SECONDS = 60.0
MAX_FACTS = 20_000


@dataclass(frozen=True)
class CatalogProfile:
    """The learned facts, indexed for reading queries."""

    categories: frozenset[str] = frozenset()  # slugs
    numbers: Mapping[str, frozenset[float]] = field(default_factory=dict)  # name -> values
    flags: frozenset[str] = frozenset()  # boolean attributes some product has as true
    # the words of a text value -> the (attribute, value) pairs spelled that way
    texts: Mapping[tuple[str, ...], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # a word of a category slug (and its singular) -> the slugs it names
    category_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # the first word of a boolean attribute's name -> (its words, the name), longest first
    flag_words: Mapping[str, tuple[tuple[tuple[str, ...], str], ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, facts: Iterable[tuple[str, str, str, int]]) -> CatalogProfile:
        categories: set[str] = set()
        numbers: dict[str, set[float]] = {}
        flags: set[str] = set()
        texts: dict[tuple[str, ...], set[tuple[str, str]]] = {}
        for name, kind, value, _ in facts:
            if name == CATEGORY_FACT:
                categories.add(value)
            elif kind == "n":
                try:
                    numbers.setdefault(name, set()).add(float(value))
                except ValueError:
                    continue
            elif kind == "b" and value == "true":
                flags.add(name)
            elif kind == "t":
                key = tuple(words(value))
                if key:
                    texts.setdefault(key, set()).add((name, value))
        named: dict[str, set[str]] = {}
        for slug in categories:
            for part in slug.split("-"):
                for form in (part, singular(part)):
                    named.setdefault(form, set()).add(slug)
        by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for name in flags:
            parts = tuple(name.split("_"))
            by_first.setdefault(parts[0], []).append((parts, name))
        return cls(
            frozenset(categories),
            {n: frozenset(v) for n, v in numbers.items()},
            frozenset(flags),
            {k: tuple(sorted(v)) for k, v in texts.items()},
            {w: tuple(sorted(v)) for w, v in named.items()},
            {w: tuple(sorted(v, key=lambda f: (-len(f[0]), f[1]))) for w, v in by_first.items()},
        )


def singular(word: str) -> str:
    """A plural's singular, roughly (`laptops`, `shoes`, `batteries`, `boxes`); for matching
    category words and values, never shown."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("sh", "ch", "x", "ss")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


@dataclass
class _Cached:
    profile: CatalogProfile
    loaded_at: float
    generation: int


_generation = 0
_CACHE: WeakKeyDictionary[Any, _Cached] = WeakKeyDictionary()


def learned_values_changed() -> None:
    """A write in this process changed the learned facts: the next search reads them again."""
    global _generation
    _generation += 1


async def catalog_profile(session: AsyncSession) -> CatalogProfile:
    """The learned facts of the session's database (cached per engine, see the module doc)."""
    engine = session.get_bind()
    cached = _CACHE.get(engine)
    now = time.monotonic()
    if cached and cached.generation == _generation and now - cached.loaded_at < TTL_SECONDS:
        return cached.profile
    generation = _generation
    profile = CatalogProfile.of(await repo.attribute_facts(session, MAX_FACTS))
    _CACHE[engine] = _Cached(profile, now, generation)
    return profile
