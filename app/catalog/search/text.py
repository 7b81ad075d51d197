"""Query text, the same on every backend: normalising, parsing, and the word list's similarity.

A user's query is parsed here, in Python, into plain lowercase alphanumeric words, so no input ever
reaches a full-text query language unquoted (`wh-1000xm5`, `C++`, `"`, `(` or `AND` are just
text). The syntax is web-search style, which never fails on odd input:

* words in any order must all match (AND);
* `"two words"` must match as a phrase (so must a hyphenated token: `wh-1000xm5`);
* `or` between two terms makes either one enough;
* `-word` / `-"a phrase"` excludes;
* the last word, when typed bare, also matches as a prefix (agents send partial words too).

Accents are folded (`crème` = `creme`) and a few filler words dropped (`STOP_WORDS`); each
backend applies its English stemmer to the words it receives (plural = singular).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

# Filler words a query may hold that never tell products apart. Unlike a full English stop-word
# list, "on", "over", "in", "out", "up", "down", "off" and "no" stay: "on-ear", "down jacket".
STOP_WORDS = frozenset(
    """a an and are as at be by for from i is it its me my of or our than that the their this
    to was were what which with you your""".split()
)

MAX_TERMS = 16  # words beyond this are ignored (a query is at most 200 characters anyway)
MAX_WORD_LENGTH = 64
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_EDGES = re.compile(r"^[^\w]+|[^\w]+$")


def fold(text: str) -> str:
    """Lowercase without accents: `Crème Brûlée` → `creme brulee`.

    Canonical decomposition only (NFD, not NFKD) and `lower`, not `casefold`: `ß`, `ﬁ` or `½`
    stay as they are, because SQLite's FTS5 tokenizer indexes them unchanged (PostgreSQL's
    `unaccent` folds them on both sides of the match anyway)."""
    decomposed = unicodedata.normalize("NFD", text).lower()
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """The searchable words of `text`: folded alphanumeric runs, stop words dropped."""
    return [w[:MAX_WORD_LENGTH] for w in _WORD.findall(fold(text)) if w not in STOP_WORDS]


def vocabulary_words(text: str) -> set[str]:
    """Words worth suggesting as spelling corrections: alphabetic, 3 to 32 letters."""
    return {w for w in words(text) if 3 <= len(w) <= 32 and w.isalpha()}


@dataclass(frozen=True)
class Term:
    """One or more words that must appear in this order (one word: anywhere)."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word may be the start of a longer word
    raw: str = field(default="", compare=False)  # as typed (for `matched_words`)

    @property
    def label(self) -> str:
        """The term as the user typed it (its words when it was corrected)."""
        return self.raw or " ".join(self.words)


@dataclass(frozen=True)
class ParsedQuery:
    """All `clauses` must match (each: any one of its terms); no `excluded` term may."""

    clauses: tuple[tuple[Term, ...], ...] = ()
    excluded: tuple[Term, ...] = ()
    raw: str = ""
    whole: str = field(default="", compare=False)  # the query folded, for exact SKU/GTIN lookup

    @property
    def empty(self) -> bool:
        return not self.clauses

    def all_words(self) -> list[str]:
        """The positive words, in order (for spelling suggestions)."""
        return [w for clause in self.clauses for term in clause for w in term.words]

    def relaxed(self) -> ParsedQuery:
        """Any one word (or phrase) is enough: the clauses OR-ed together."""
        terms = tuple(term for clause in self.clauses for term in clause)
        return ParsedQuery((terms,), self.excluded, self.raw, self.whole)

    def replaced(self, corrections: dict[str, str]) -> ParsedQuery:
        """The same query with misspelt words replaced (prefix matching dropped for them)."""

        def fix(term: Term) -> Term:
            fixed = tuple(corrections.get(w, w) for w in term.words)
            same = fixed == term.words
            return Term(fixed, term.prefix and same, term.raw if same else " ".join(fixed))

        clauses = tuple(tuple(fix(t) for t in clause) for clause in self.clauses)
        return ParsedQuery(clauses, self.excluded, self.raw, self.whole)

    def prefix_word(self) -> str | None:
        """The word matched as a prefix (the last word typed bare), if any."""
        for clause in self.clauses:
            for term in clause:
                if term.prefix:
                    return term.words[-1]
        return None

    def without_prefix(self) -> ParsedQuery:
        """The same query with every word matched whole."""
        clauses = tuple(tuple(Term(t.words, raw=t.raw) for t in clause) for clause in self.clauses)
        return ParsedQuery(clauses, self.excluded, self.raw, self.whole)

    def text(self) -> str:
        """A readable form of the query (for messages)."""
        parts = []
        for clause in self.clauses:
            parts.append(" or ".join(_show(term) for term in clause))
        parts.extend("-" + _show(term) for term in self.excluded)
        return " ".join(parts)


def _show(term: Term) -> str:
    text = " ".join(term.words)
    return f'"{text}"' if len(term.words) > 1 else text


def parse(query: str) -> ParsedQuery:
    """Parse web-search syntax into words (never fails; see the module docstring)."""
    clauses: list[list[Term]] = []
    excluded: list[Term] = []
    pending_or = False
    count = 0
    tokens = list(_TOKEN.finditer(query))
    last_bare = len(tokens) - 1 if tokens and tokens[-1].group(3) else -1
    for index, match in enumerate(tokens):
        negate, quoted, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None and bare.lower() == "or" and clauses:
            pending_or = True
            continue
        if bare is not None and bare.startswith("-") and len(bare) > 1:
            negate, bare = "-", bare[1:]
        found = words(quoted if quoted is not None else bare or "")
        if not found or count >= MAX_TERMS:
            continue
        found = found[: MAX_TERMS - count]
        count += len(found)
        if negate:
            excluded.append(Term(tuple(found)))
            continue
        # a bare last word (`headph`) is a prefix; so is a hyphenated one's last part
        prefix = index == last_bare
        typed = (quoted if quoted is not None else bare or "").strip()
        term = Term(tuple(found), prefix, _EDGES.sub("", typed))
        if pending_or:
            clauses[-1].append(term)
            pending_or = False
        else:
            clauses.append([term])
    return ParsedQuery(
        tuple(tuple(c) for c in clauses), tuple(excluded), query, fold(query.strip())
    )


def trigrams(word: str) -> set[str]:
    """pg_trgm's trigrams of one word: padded with two spaces before and one after."""
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def similarity(a: str, b: str) -> float:
    """pg_trgm's `similarity` for single words: shared trigrams over all trigrams."""
    return overlap(trigrams(a), trigrams(b))


def overlap(ta: set[str], tb: set[str]) -> float:
    """`similarity` of two words' trigram sets."""
    shared = len(ta & tb)
    union = len(ta) + len(tb) - shared
    return shared / union if union else 0.0


def product_vocabulary(name: str, category: str, attributes: Any) -> set[str]:
    """The words a product adds to the spelling word list: name, brand, category, text values."""
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    parts = [name, category.replace("-", " ")]
    if isinstance(attributes, dict):
        parts.extend(v for v in attributes.values() if isinstance(v, str))
    return vocabulary_words(" ".join(parts))


CATEGORY_FACT = ":category"  # the learned list's pseudo-attribute for a product's category
MAX_FACT_NAME = 40  # attribute names longer than this are not learned
MAX_FACT_VALUE = 40  # text values longer than this are not learned (descriptions, not values)
MAX_FACT_WORDS = 4


def _fact_number(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def attribute_facts(category: str, attributes: Any) -> set[tuple[str, str, str]]:
    """What a product adds to the learned list of attribute values (`search_attributes`), as
    (name, kind, value): kind `n` a number, `b` a boolean, `t` a short text with a letter
    (folded: identifiers such as GTINs and long texts stay out), and its category."""
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    facts = {(CATEGORY_FACT, "t", category)}
    if not isinstance(attributes, dict):
        return facts
    for name, value in attributes.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_FACT_NAME or name[0] == ":":
            continue  # `:` starts the pseudo-attributes (CATEGORY_FACT)
        if isinstance(value, bool):
            facts.add((name, "b", "true" if value else "false"))
        elif isinstance(value, int | float):
            if value == value and abs(value) < 1e15:  # not NaN, not absurd
                facts.add((name, "n", _fact_number(value)))
        elif isinstance(value, str):
            folded = " ".join(fold(value).split())
            if (
                0 < len(folded) <= MAX_FACT_VALUE
                and len(folded.split()) <= MAX_FACT_WORDS
                and any(c.isalpha() for c in folded)
            ):
                facts.add((name, "t", folded))
    return facts
