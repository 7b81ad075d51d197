"""Query understanding: the constraints an agent writes into a query, read before it is matched.

Agents put constraints into the query text far more often than into filters: "cheap wireless
earbuds", "gaming laptop under $1500", "running shoes size 10", "do you have 32 GB RAM laptops?".
`understand(query, profile)` reads them, deterministically and without the database (the
catalog's learned facts come in as a `CatalogProfile`, app/catalog/search/profile.py):

* **prices** (`under $1500`, `below 1,500 dollars`, `less than $50`, `over $100`, `more than 100`,
  `between $50 and $100`, `$50-100`, `under 1.5k`, `≤ 50`, `$50 or less`, `$80+`) become a price
  filter in minor units of the catalog's currency ("under" and "over" are strict, "at most" and
  "at least" inclusive, a range inclusive at both ends); a number followed by a unit is not a
  price (`under 2 kg`);
* **price intent** (`cheap`, `budget`, `affordable`, `inexpensive` / `premium`, `high-end`,
  `luxury`) orders equally relevant products by price; it is not a text word;
* **numbers with a unit or an attribute name** (`size 10`, `16gb`, `32 GB RAM`, `65w`, `27 inch`,
  `4-season`, `1000 pieces`, `at least 16gb`) become an attribute condition on the attributes the
  catalog has with that unit (`_gb`, `_in`, `wattage`, ...), narrowed by a word of the attribute's
  name next to it (`RAM` → `ram_gb`); so does a bare decimal that exactly one attribute has
  (`10.5`: `size`);
* **boolean attributes named in words** (`wireless`, `noise cancelling`, `5g`) become a condition
  (kept as a text word when nothing else is left to match); `in stock` the stock filter;
* **attribute values** the catalog has (`red`, `earbuds`, `women`, `over-ear`, a brand) stay text
  words and also boost the products with exactly that value; **category words** (`laptops`,
  `shoes`) boost that category;
* **filler and intent words** (`show me`, `do you have`, `find`, `best`, `for`, `with`, `?`) are
  dropped: neither required nor spell-corrected.

Quoted phrases, `-excluded` words and the terms around `or` are left exactly as typed. What was
read is returned as a `Reading`, which the service applies (an explicit filter of the request
wins over one read from words) and reports as the response's `interpreted` block.
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from app.catalog.search.common import AttributeCondition
from app.catalog.search.profile import CatalogProfile, singular
from app.catalog.search.text import STOP_WORDS, fold

MINOR_UNITS = 100  # the catalog's currency has cents (prices are stored in minor units)
MAX_PRICE_CENTS = 2_000_000_000
MAX_ATTRIBUTE_NUMBER = 10**15  # as an attribute filter of the request (schemas.py)

# Words an agent adds around what it wants; never required, never corrected. Kept short on
# purpose: a word that can name a product ("one", "light", "pro", "max", "new") is not here.
FILLER_WORDS = frozenset(
    """find finding show showing search searching look looking need needs needed want wants
    wanted get getting buy buying purchase give recommend recommendation recommendations
    suggest suggestion suggestions best good great nice any some please have has had do does did
    can could would should will like something anything options option items item things thing
    stuff hi hello hey thanks thank help under below less price priced prices cost costs costing
    dollar dollars usd bucks available sell sells selling there here them these those they we us
    he she am im ive id just really very also too maybe about around approximately within which
    who where how why when whose s m ll d pls ones in on sorted sort sale deal deals""".split()
)
FILLER_PHRASES: tuple[tuple[str, ...], ...] = (
    ("do", "you", "have"),
    ("do", "you", "sell"),
    ("do", "you", "carry"),
    ("show", "me"),
    ("find", "me"),
    ("looking", "for"),
    ("i", "need"),
    ("i", "want"),
)
LOW_PRICE_WORDS = (
    "cheap",
    "cheaper",
    "cheapest",
    "budget",
    "affordable",
    "inexpensive",
    "bargain",
    "economical",
)
HIGH_PRICE_WORDS = ("premium", "luxury", "luxurious", "expensive", "flagship")
PRICE_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("low", "cost"), "low"),
    (("low", "priced"), "low"),
    (("high", "end"), "high"),
    (("top", "end"), "high"),
)

# A unit as typed -> (the unit key of an attribute name, factor): `16gb` reads `*_gb` = 16,
# `1tb` reads `*_gb` = 1024 (or `*_tb` = 1). A key is an attribute name's last part after `_`
# or the whole name (`wattage`, `pieces`, `seasons`), so units the catalog spells out are
# recognised without being listed here.
UNITS: dict[str, tuple[tuple[str, float], ...]] = {}
for _aliases, _keys in (
    ("gb gig gigs gigabyte gigabytes", (("gb", 1), ("gigabytes", 1))),
    ("tb terabyte terabytes", (("tb", 1), ("gb", 1024))),
    ("mb megabyte megabytes", (("mb", 1),)),
    ("in inch inches \" ″ ''", (("in", 1), ("inch", 1), ("inches", 1))),
    ("w watt watts", (("w", 1), ("wattage", 1), ("watts", 1))),
    ("hz hertz", (("hz", 1),)),
    ("mah", (("mah", 1),)),
    ("mp megapixel megapixels", (("mp", 1), ("megapixels", 1))),
    ("l litre litres liter liters ltr", (("l", 1), ("litres", 1), ("liters", 1))),
    ("ml millilitre millilitres milliliter milliliters", (("ml", 1), ("l", 0.001))),
    ("g gram grams", (("g", 1), ("grams", 1), ("kg", 0.001))),
    ("kg kilo kilos kilogram kilograms", (("kg", 1), ("g", 1000))),
    ("mm millimetre millimeter", (("mm", 1),)),
    ("cm centimetre centimeter", (("cm", 1),)),
    ("lm lumen lumens", (("lumens", 1), ("lm", 1))),
    ("h hr hrs hour hours", (("hours", 1), ("h", 1))),
    ("min mins minute minutes", (("min", 1), ("minutes", 1))),
    ("p people person persons", (("people", 1), ("persons", 1))),
    ("pc pcs piece pieces", (("pieces", 1),)),
    ("page pages", (("pages", 1),)),
    ("season seasons", (("seasons", 1),)),
    ("month months", (("months", 1),)),
):
    for _alias in _aliases.split():
        UNITS[_alias] = _keys

# words before a number that set the comparison: `at least 16gb`, `under 2 kg`
COMPARISONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("at", "least"), "gte"),
    (("at", "most"), "lte"),
    (("up", "to"), "lte"),
    (("no", "more", "than"), "lte"),
    (("less", "than"), "lt"),
    (("fewer", "than"), "lt"),
    (("more", "than"), "gt"),
    (("greater", "than"), "gt"),
    (("min",), "gte"),
    (("minimum",), "gte"),
    (("max",), "lte"),
    (("maximum",), "lte"),
    (("under",), "lt"),
    (("below",), "lt"),
    (("over",), "gt"),
    (("above",), "gt"),
)

_CURRENCY = r"(?:[$€£]|usd\b|eur\b|gbp\b)"
# a sign after an amount is its currency unless it starts the next amount (`$50 $100`)
_CURRENCY_AFTER = r"(?:\s?(?:[$€£](?!\s?\d)|dollars?\b|usd\b|bucks\b|euros?\b|eur\b|gbp\b))"


def _amount(tag: str) -> str:
    return (
        rf"(?P<c{tag}>{_CURRENCY}\s?)?"
        rf"(?P<n{tag}>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)"
        rf"(?P<k{tag}>k\b)?(?P<a{tag}>{_CURRENCY_AFTER})?"
    )


_UPPER = r"under|below|beneath|less than|cheaper than|lower than|no more than|not more than|at most|up to|max(?:imum)?|within|<=?|≤"  # noqa: E501
_LOWER = (
    r"over|above|more than|greater than|higher than|at least|min(?:imum)?|from|starting at|>=?|≥"  # noqa: E501
)


@cache
def _price_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Compiled on first use (18 ms: not on the cold start of a request without a query)."""
    return tuple((re.compile(pattern), kind) for pattern, kind in _PRICE_SOURCES)


_PRICE_SOURCES: tuple[tuple[str, str], ...] = tuple(
    (pattern, kind)
    for pattern, kind in (
        (rf"\bbetween\s?{_amount('1')}\s?(?:and|to|-|–)\s?{_amount('2')}", "range"),
        (rf"\bfrom\s?{_amount('1')}\s?(?:to|-|–)\s?{_amount('2')}", "range"),
        (rf"(?<![\w.,]){_amount('1')}\s?(?:-|–|to)\s?{_amount('2')}", "range"),
        (rf"(?:\b|(?<=\s)|^)(?P<w>{_UPPER})\s?{_amount('1')}", "upper"),
        (rf"(?:\b|(?<=\s)|^)(?P<w>{_LOWER})\s?{_amount('1')}", "lower"),
        (rf"(?<![\w.,]){_amount('1')}\s?(?:or less|or under|or cheaper|and under|max)\b", "max"),
        (rf"(?<![\w.,]){_amount('1')}\s?(?:\+|or more|and up|and above|plus\b)", "min"),
        (rf"(?<![\w.,]){_amount('1')}", "bare"),
    )
)
_INCLUSIVE = (
    "at most",
    "up to",
    "no more than",
    "not more than",
    "max",
    "maximum",
    "within",
    "<=",
    "≤",
    "at least",
    "min",
    "minimum",
    "from",
    "starting at",
    ">=",
    "≥",
)
_NUMBER_TOKEN = re.compile(
    r"^(?P<op>[<>]=?|[≤≥])?(?P<num>\d+(?:\.\d+)?)-?(?P<unit>[a-z\"″'][a-z\"″'-]*)?(?P<plus>\+)?$"
)
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_EDGE = re.compile(r"^[^\w$€£<>≤≥\"″'+-]+|[^\w$€£<>≤≥\"″'+%]+$")


@dataclass(frozen=True)
class WordCondition:
    """Attribute conditions read from words (any one of them is enough)."""

    source: str  # the words as typed: "size 10", "16gb", "wireless"
    conditions: tuple[AttributeCondition, ...]


@dataclass(frozen=True)
class Reading:
    """How a query was read; the service applies it and reports it (`interpreted`)."""

    text: str  # the query left to match as text, in the search syntax
    fallback_text: str  # the same with the words of `attributes` kept as text words
    price_min: int | None = None
    price_max: int | None = None
    price_source: str = ""
    intent: int = 0  # -1: cheaper first, 1: dearer first
    intent_source: str = ""
    in_stock: bool | None = None
    in_stock_source: str = ""
    attributes: tuple[WordCondition, ...] = ()  # conditions (filters)
    boosts: tuple[WordCondition, ...] = ()  # exact values, ranked first
    categories: tuple[tuple[str, str], ...] = ()  # (slug, the word that named it)
    ignored: tuple[str, ...] = ()


@dataclass
class _Token:
    raw: str  # as typed
    norm: str  # folded, edge punctuation stripped
    bare: bool  # a plain positive word (not quoted, not excluded, not next to `or`)
    positive: bool = True  # not an excluded term, not `or`
    words: tuple[str, ...] = ()  # its folded words, stop words kept
    used: bool = False  # read as a constraint or filler: not part of the text query
    source: str = ""  # why it was used ("filler", "price", "attribute", ...)

    def __post_init__(self) -> None:
        self.words = tuple(re.findall(r"[^\W_]+", self.norm or fold(self.raw)))


@dataclass
class _State:
    tokens: list[_Token]
    profile: CatalogProfile
    price_min: int | None = None
    price_max: int | None = None
    price_sources: list[str] = field(default_factory=list)
    intent: int = 0
    intent_sources: list[str] = field(default_factory=list)
    in_stock: bool | None = None
    in_stock_source: str = ""
    attributes: list[tuple[WordCondition, list[int]]] = field(default_factory=list)
    boosts: list[WordCondition] = field(default_factory=list)
    categories: list[tuple[str, str]] = field(default_factory=list)

    def free(self, start: int, end: int) -> bool:
        return end <= len(self.tokens) and all(
            self.tokens[i].bare and not self.tokens[i].used for i in range(start, end)
        )

    def use(self, start: int, end: int, source: str) -> str:
        for i in range(start, end):
            self.tokens[i].used, self.tokens[i].source = True, source
        return " ".join(self.tokens[i].raw for i in range(start, end))


def understand(query: str, profile: CatalogProfile) -> Reading:
    """Read the constraints of `query` (see the module docstring)."""
    state = _State(_tokens(query), profile)
    _prices(state)
    _in_stock(state)
    _fillers(state)
    _price_intent(state)
    _numbers(state)
    _flags(state)
    _values(state)
    tokens = state.tokens
    flags = [i for condition, indices in state.attributes for i in indices]
    remaining = [
        t for t in tokens if not t.used and t.positive and any(w not in STOP_WORDS for w in t.words)
    ]
    if not remaining and flags:  # a flag alone stays a text word ("wireless"): nothing else
        state.attributes = [(c, ix) for c, ix in state.attributes if not _is_flag(c)]
        for i in flags:
            if tokens[i].source == "flag":
                tokens[i].used = False
    attribute_tokens = {i for _, indices in state.attributes for i in indices}
    text = " ".join(t.raw for t in tokens if not t.used)
    fallback = " ".join(t.raw for i, t in enumerate(tokens) if not t.used or i in attribute_tokens)
    ignored = tuple(
        w for t in tokens if t.used and t.source == "filler" for w in t.words if w != "s"
    )
    return Reading(
        text=text,
        fallback_text=fallback,
        price_min=state.price_min,
        price_max=state.price_max,
        price_source=", ".join(state.price_sources),
        intent=state.intent,
        intent_source=", ".join(state.intent_sources),
        in_stock=state.in_stock,
        in_stock_source=state.in_stock_source,
        attributes=tuple(c for c, _ in state.attributes),
        boosts=tuple(state.boosts),
        categories=tuple(state.categories),
        ignored=tuple(dict.fromkeys(ignored)),
    )


_NOT_ALTERNATIVES = frozenset("more less above under below cheaper fewer higher lower so".split())


def _is_connector(found: list[re.Match[str]], i: int) -> bool:
    """`or` between two terms (not `or more`, `or less`)."""
    if (found[i].group(3) or "").lower() != "or" or i == 0:
        return False
    after = (found[i + 1].group(3) or "").lower() if i + 1 < len(found) else ""
    return after not in _NOT_ALTERNATIVES


def _is_flag(condition: WordCondition) -> bool:
    return all(c.value is True for c in condition.conditions)


def _tokens(query: str) -> list[_Token]:
    """The query's tokens; only plain positive words outside quotes and `or` are `bare`."""
    found = list(_TOKEN.finditer(query))
    connectors = {i for i, m in enumerate(found) if _is_connector(found, i)}
    tokens: list[_Token] = []
    for index, match in enumerate(found):
        negate, quoted, bare = match.groups()
        raw = match.group(0)
        if negate or (bare and bare.startswith("-") and len(bare) > 1):
            tokens.append(_Token(raw, "", False, positive=False))
            continue
        if quoted is not None:
            tokens.append(_Token(raw, "", False))
            continue
        if index in connectors:
            tokens.append(_Token(raw, "", False, positive=False))
            continue
        text = bare or ""
        near_or = index - 1 in connectors or index + 1 in connectors
        if text in ("-", "–", "—"):  # `$50 - $100`: part of a range, never a word
            tokens.append(_Token(raw, "-", not near_or))
            continue
        norm = _EDGE.sub("", fold(text).replace("’", "'"))
        if norm.endswith("'s"):  # `women's`: matched as `women` (the name's `Women's` too)
            norm = norm[:-2]
            raw = re.sub(r"['’]s(?=[^\w]*$)", "", raw)
        tokens.append(_Token(raw, norm, not near_or and bool(norm)))
    return tokens


# --- prices -------------------------------------------------------------------------------------


def _cents(match: re.Match[str], tag: str) -> int | None:
    number = float(match.group(f"n{tag}").replace(",", ""))
    if match.group(f"k{tag}"):
        number *= 1000
    cents = round(number * MINOR_UNITS)
    return cents if 0 <= cents <= MAX_PRICE_CENTS else None


def _has_currency(match: re.Match[str], *tags: str) -> bool:
    return any(match.group(f"c{t}") or match.group(f"a{t}") for t in tags)


def _prices(state: _State) -> None:
    """Price expressions over runs of bare tokens; a match must cover whole tokens."""
    for start, end in _runs(state):
        _prices_in(state, start, end)


def _runs(state: _State) -> Iterator[tuple[int, int]]:
    start = None
    for i, token in enumerate([*state.tokens, None]):
        if token is not None and token.bare and not token.used:
            start = i if start is None else start
        elif start is not None:
            yield start, i
            start = None


def _prices_in(state: _State, start: int, end: int) -> None:
    tokens = state.tokens
    text, offsets = "", []
    for i in range(start, end):
        if text:
            text += " "
        offsets.append((len(text), i))
        text += tokens[i].norm
    bounds = {pos for pos, _ in offsets} | {pos + len(tokens[i].norm) for pos, i in offsets}
    taken: list[tuple[int, int]] = []
    for pattern, kind in _price_patterns():
        position = 0
        while (match := pattern.search(text, position)) is not None:
            s, e = match.span()
            position = s + 1  # a rejected match may hide one starting inside it (`10 $100`)
            if s not in bounds or e not in bounds or any(s < b and a < e for a, b in taken):
                continue
            first = next(i for pos, i in offsets if pos == s)
            last = max(i for pos, i in offsets if pos < e)
            if not _read_price(state, match, kind, last):
                continue
            taken.append((s, e))
            position = e
            state.price_sources.append(state.use(first, last + 1, "price"))


def _read_price(state: _State, match: re.Match[str], kind: str, last: int) -> bool:
    """Apply one price expression; False when it is not a price after all."""
    tags = ("1", "2") if kind == "range" else ("1",)
    currency = _has_currency(match, *tags)
    if kind == "bare" and not currency:
        return False
    if kind == "range" and not currency and not match.group(0).startswith("between"):
        return False
    if kind == "lower" and not currency and match.group("w") in ("from", "starting at"):
        return False  # `books from 2020`
    following = state.tokens[last + 1] if last + 1 < len(state.tokens) else None
    if not currency and following is not None and _is_unit(state, following.norm):
        return False  # `under 2 kg`, `over 4 people`: a measure, read by `_numbers`
    values = [_cents(match, t) for t in tags]
    if any(v is None for v in values):
        return False
    low: int | None
    high: int | None
    if kind == "range":
        low, high = sorted(v for v in values if v is not None)
    elif kind in ("upper", "lower"):
        word = match.group("w")
        inclusive = word in _INCLUSIVE
        value = values[0]
        assert value is not None
        if kind == "upper":
            low, high = None, value if inclusive else value - 1
        else:
            low, high = (value if inclusive else value + 1), None
    elif kind == "min":
        low, high = values[0], None
    else:  # max, bare
        low, high = None, values[0]
    if low is not None:
        state.price_min = low if state.price_min is None else max(state.price_min, low)
    if high is not None:
        high = max(high, 0)
        state.price_max = high if state.price_max is None else min(state.price_max, high)
    return True


def _is_unit(state: _State, word: str) -> bool:
    return word in UNITS or bool(_unit_attributes(state.profile, word))


# --- words --------------------------------------------------------------------------------------


def _fillers(state: _State) -> None:
    tokens = state.tokens
    norms = [t.norm for t in tokens]
    comparisons: set[int] = set()  # `less than 2 kg`: read with the number by `_numbers`
    for i in range(len(tokens)):
        for phrase, _ in COMPARISONS:
            after = i + len(phrase)
            if (
                tuple(norms[i:after]) == phrase
                and after < len(norms)
                and norms[after][:1].isdigit()
            ):
                comparisons.update(range(i, after))
    for i in range(len(tokens)):
        for phrase in FILLER_PHRASES:
            end = i + len(phrase)
            if state.free(i, end) and tuple(t.norm for t in tokens[i:end]) == phrase:
                state.use(i, end, "filler")
    for i in range(len(tokens) - 1):  # `top 5 laptops`
        if norms[i] == "top" and norms[i + 1].isdigit() and state.free(i, i + 2):
            state.use(i, i + 2, "filler")
    units = {  # `27 in monitor`: a unit after a number, not filler
        i for i in range(1, len(tokens)) if norms[i] in UNITS and _NUMBER.match(norms[i - 1])
    }
    protected = comparisons | units | _in_values(state)  # `in ear`: a value, not filler
    for i, token in enumerate(tokens):
        if not state.free(i, i + 1) or not token.words or i in protected:
            continue
        if norms[i] in ("or", "and") and norms[i + 1 : i + 2] in (["more"], ["less"], ["up"]):
            continue  # `16gb or more`: read with the number
        if all(w in FILLER_WORDS or w in STOP_WORDS for w in token.words):
            state.use(i, i + 1, "filler")


def _in_values(state: _State) -> set[int]:
    """The tokens of phrases of several words that the catalog has as a value (`in ear`)."""
    found: set[int] = set()
    for i in range(len(state.tokens)):
        for size in (4, 3, 2):
            if _value_at(state, i, i + size):
                found.update(range(i, i + size))
    return found


def _value_at(state: _State, start: int, end: int) -> tuple[tuple[str, str], ...] | None:
    """The (attribute, value) pairs spelled by the free tokens start..end, if any."""
    if not state.free(start, end):
        return None
    phrase = tuple(w for t in state.tokens[start:end] for w in t.words)
    if not phrase or all(w in STOP_WORDS for w in phrase):
        return None
    texts = state.profile.texts
    return texts.get(phrase) or texts.get((*phrase[:-1], singular(phrase[-1])))


def _price_intent(state: _State) -> None:
    tokens = state.tokens
    for i in range(len(tokens)):
        for phrase, direction in PRICE_PHRASES:
            end = i + len(phrase)
            if state.free(i, end) and tuple(w for t in tokens[i:end] for w in t.words) == phrase:
                _intend(state, direction, state.use(i, end, "intent"))
        token = tokens[i]
        if state.free(i, i + 1) and token.words in (("high", "end"), ("top", "end")):
            _intend(state, "high", state.use(i, i + 1, "intent"))
        elif state.free(i, i + 1) and token.norm in LOW_PRICE_WORDS:
            _intend(state, "low", state.use(i, i + 1, "intent"))
        elif state.free(i, i + 1) and token.norm in HIGH_PRICE_WORDS:
            _intend(state, "high", state.use(i, i + 1, "intent"))


def _intend(state: _State, direction: str, source: str) -> None:
    state.intent = -1 if direction == "low" else 1
    state.intent_sources.append(source)


def _in_stock(state: _State) -> None:
    tokens = state.tokens
    for i in range(len(tokens) - 1):
        if state.free(i, i + 2) and (tokens[i].norm, tokens[i + 1].norm) == ("in", "stock"):
            state.in_stock, state.in_stock_source = True, state.use(i, i + 2, "in_stock")


# --- numbers with a unit or a name --------------------------------------------------------------


def _unit_attributes(profile: CatalogProfile, unit: str) -> list[tuple[str, float]]:
    """The numeric attributes a unit as typed reads, with the factor to their unit."""
    keys = UNITS.get(unit, ((unit, 1.0),))
    found: dict[str, float] = {}
    for key, factor in keys:
        for name in profile.numbers:
            parts = name.split("_")
            if name == key or (len(parts) > 1 and parts[-1] == key) or name == key + "s":
                found.setdefault(name, factor)
    return sorted(found.items())


def _named_attributes(profile: CatalogProfile, word: str) -> list[str]:
    """Numeric attributes named by a word before a number: `size 10`, `ram 16`."""
    exact = [n for n in profile.numbers if n == word]
    return exact or sorted(n for n in profile.numbers if n.split("_")[0] == word and "_" in n)


def _numbers(state: _State) -> None:
    tokens = state.tokens
    for i, token in enumerate(tokens):
        if not state.free(i, i + 1):
            continue
        match = _NUMBER_TOKEN.match(token.norm)
        if match is None:
            continue
        value = float(match.group("num"))
        if not math.isfinite(value) or value > MAX_ATTRIBUTE_NUMBER:
            continue  # a 400-digit number is text
        start, end = i, i + 1
        unit = match.group("unit")
        candidates: list[tuple[str, float]] = []
        age = _age_at(state, i, unit)
        if age is not None:
            _read_age(state, i, age, value)
            continue
        if unit:
            candidates = _unit_attributes(state.profile, unit)
        elif state.free(i + 1, i + 2) and _unit_attributes(state.profile, tokens[i + 1].norm):
            candidates = _unit_attributes(state.profile, tokens[i + 1].norm)
            end = i + 2
        elif state.free(i - 1, i) and i > 0:
            named = _named_attributes(state.profile, tokens[i - 1].norm)
            if named:
                candidates, start = [(n, 1.0) for n in named], i - 1
        if not candidates and "." in match.group("num") and not match.group("op") and not unit:
            # a bare decimal that one attribute has (`running shoes 10.5`); integers stay text
            # (`ryzen 9`, model numbers)
            having = [n for n, values in state.profile.numbers.items() if value in values]
            if len(having) == 1:
                candidates = [(having[0], 1.0)]
        if not candidates:
            continue
        candidates, start, end = _qualified(state, candidates, start, end)
        op, start = _comparison(state, match, start)
        if match.group("plus") or _followed_by_more(state, end):
            op = "gte"
            end += 2 if not match.group("plus") else 0
        conditions = _conditions(state.profile, candidates, op, value)
        if not conditions:
            continue
        source = state.use(start, end, "attribute")
        state.attributes.append((WordCondition(source, conditions), list(range(start, end))))


_YEARS = ("year", "years", "yr", "yrs")


def _age_at(state: _State, i: int, unit: str | None) -> int | None:
    """The end of `8 year old`, `8-year-old`, `8yo`, `8 years old` at token `i`, if it is one
    and the catalog has an age attribute."""
    if not any("age" in name.split("_") for name in state.profile.numbers):
        return None
    norms = [t.norm for t in state.tokens]
    if unit in ("yo", "yrs", "years", "year", "yr"):
        end = i + 1
    elif unit in ("year-old", "years-old"):
        return i + 1
    elif norms[i + 1 : i + 2] and norms[i + 1] in _YEARS and state.free(i + 1, i + 2):
        end = i + 2
    else:
        return None
    if unit == "yo":
        return end
    if norms[end : end + 1] == ["old"] and state.free(end, end + 1):
        return end + 1
    return None


def _read_age(state: _State, i: int, end: int, value: float) -> None:
    """A child's age: the attributes named `age...`: a minimum age at most it, a maximum at
    least it, any other equal to it."""
    conditions = []
    for name in sorted(n for n in state.profile.numbers if "age" in n.split("_")):
        op = "lte" if name.endswith("_min") else "gte" if name.endswith("_max") else "eq"
        conditions.append(AttributeCondition(name, op, _number(value)))
    source = state.use(i, end, "attribute")
    state.attributes.append((WordCondition(source, tuple(conditions)), list(range(i, end))))


def _qualified(
    state: _State, candidates: list[tuple[str, float]], start: int, end: int
) -> tuple[list[tuple[str, float]], int, int]:
    """Narrow to the attributes named by a word just after or before (`32 GB RAM`)."""
    if len(candidates) < 2:
        return candidates, start, end
    for index in (end, start - 1):
        if not state.free(index, index + 1) or index < 0:
            continue
        word = state.tokens[index].norm
        narrowed = [(n, f) for n, f in candidates if word in n.split("_")]
        if narrowed and len(narrowed) < len(candidates):
            return narrowed, min(start, index), max(end, index + 1)
    return candidates, start, end


def _comparison(state: _State, match: re.Match[str], start: int) -> tuple[str, int]:
    symbol = match.group("op")
    if symbol:
        return {"<": "lt", "<=": "lte", "≤": "lte", ">": "gt", ">=": "gte", "≥": "gte"}[
            symbol
        ], start
    norms = [t.norm for t in state.tokens]
    for phrase, op in COMPARISONS:
        begin = start - len(phrase)
        if begin >= 0 and tuple(norms[begin:start]) == phrase and state.free(begin, start):
            return op, begin
    return "eq", start


def _followed_by_more(state: _State, end: int) -> bool:
    norms = tuple(t.norm for t in state.tokens[end : end + 2])
    return state.free(end, end + 2) and norms in (("or", "more"), ("and", "up"), ("or", "above"))


def _conditions(
    profile: CatalogProfile, candidates: list[tuple[str, float]], op: str, value: float
) -> tuple[AttributeCondition, ...]:
    """One condition per attribute; for `eq`, only the attributes that have the value when
    some do (`16gb`: `ram_gb`, not `storage_gb`)."""
    scaled = [(name, _number(value * factor)) for name, factor in candidates]
    scaled = [(n, v) for n, v in scaled if abs(v) <= MAX_ATTRIBUTE_NUMBER]
    if not scaled:
        return ()  # beyond every real measure (the bound of an attribute filter): text
    if op == "eq":
        having = [(n, v) for n, v in scaled if float(v) in profile.numbers.get(n, ())]
    else:  # `at least 16gb`: the attributes whose values it divides (`ram_gb`, not storage)
        having = [(n, v) for n, v in scaled if _within(v, profile.numbers.get(n, frozenset()))]
    scaled = having or scaled
    return tuple(AttributeCondition(name, op, v) for name, v in scaled)


def _within(value: float, values: frozenset[float]) -> bool:
    return bool(values) and min(values) < value <= max(values)


def _number(value: float) -> int | float:
    """`value` without float noise (1700 ml × 0.001 = 1.7, not 1.7000000000000002)."""
    clean = float(f"{value:.12g}")
    return int(clean) if clean.is_integer() else clean


# --- flags, values, categories ------------------------------------------------------------------


def _phrase_at(state: _State, i: int, phrase: tuple[str, ...]) -> int | None:
    """The end of the tokens from `i` whose words are exactly `phrase` (None: they are not)."""
    collected: list[str] = []
    end = i
    while len(collected) < len(phrase) and state.free(end, end + 1):
        collected.extend(state.tokens[end].words)
        end += 1
    if tuple(collected) == phrase:
        return end
    return None


def _flags(state: _State) -> None:
    """Boolean attributes named in words: `wireless`, `noise cancelling`, `5g`."""
    for i, token in enumerate(state.tokens):
        first = token.words[0] if token.words else ""
        for parts, name in state.profile.flag_words.get(first, ()):
            end = _phrase_at(state, i, parts)
            if end is not None:
                source = state.use(i, end, "flag")
                condition = WordCondition(source, (AttributeCondition(name, "eq", True),))
                state.attributes.append((condition, list(range(i, end))))
                break


def _values(state: _State) -> None:
    """Text values the catalog has (boosts) and category words (category boosts); both stay
    text words."""
    profile, tokens = state.profile, state.tokens
    boosted: set[tuple[tuple[str, str], ...]] = set()
    covered = 0  # tokens before this one are part of a value already
    for i in range(len(tokens)):
        for size in (4, 3, 2, 1):
            end = i + size
            if i < covered:
                continue
            pairs = _value_at(state, i, end)
            if pairs and pairs not in boosted:
                boosted.add(pairs)
                conditions = tuple(AttributeCondition(n, "eq", v) for n, v in pairs)
                source = " ".join(t.raw for t in tokens[i:end])
                state.boosts.append(WordCondition(source, conditions))
                covered = end
                break
    named = {c for c, _ in state.categories}
    for token in tokens:
        if token.used or not token.bare:
            continue
        for word in token.words:
            slugs = profile.category_words.get(word) or profile.category_words.get(singular(word))
            for slug in slugs or ():
                if slug not in named:
                    state.categories.append((slug, token.raw))
                    named.add(slug)
