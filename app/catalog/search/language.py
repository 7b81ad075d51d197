"""Whether a word is a word of the language: a common word is never "corrected" into a catalog
word ("cheap" into "chef", "under" into "founder").

The list is English word frequencies from `pyspellchecker` (MIT; built from the OpenSubtitles
corpus: 160,572 words, each seen at least 50 times; 650 KB gzipped). Only its data file is read,
not its spelling code, and only when a search first needs it (few or no results, so spelling is
checked): 0.1-0.25 s and ~22 MB once per instance, never on the cold start of a request that
does not need it. The package's other languages (6 MB of data) ship unread.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
from functools import cache
from pathlib import Path

LANGUAGE = "en"


def _data_file() -> Path:
    spec = importlib.util.find_spec("spellchecker")  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pyspellchecker is not installed (requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / f"{LANGUAGE}.json.gz"


@cache
def language_words() -> frozenset[str]:
    """Every word of the list (lowercase)."""
    return frozenset(json.loads(gzip.decompress(_data_file().read_bytes())))


async def words_of_the_language(words: list[str]) -> set[str]:
    """Those of `words` that are words of the language (the list is loaded off the event loop
    the first time)."""
    if not words:
        return set()
    known = language_words() if language_words.cache_info().currsize else None
    if known is None:
        known = await asyncio.to_thread(language_words)
    return {w for w in words if w in known}
