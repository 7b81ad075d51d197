"""Judged search cases over the sample catalog (issue 8) and the nDCG@10 that scores them.

Every case grades a product from its own fields (category, brand, attributes, words of its name
and description), never from a list of SKUs, so the judgments stay right when the sample data
changes: 2 = exactly what was asked, 1 = related, 0 = wrong. A case's filters are part of its
judgment (a product outside them is a 0), and the ideal ranking for nDCG is computed over the whole
sample catalog graded the same way. The words of a query combine with AND, so a case grades as
related (1) only products the query can legitimately return: "Müller knife" grades the Müller
knife alone, not every other knife, which no AND match would bring back.

Hard checks (`Check`) state the must-have behaviours: what ranks first, what may never appear,
what every result (over all pages, when the case `walk`s) must satisfy.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from app.catalog.sample import sample_products

Product = dict[str, Any]
Predicate = Callable[[Product], bool]
Grader = Callable[[Product], int]

NDCG_DEPTH = 10
MEAN_NDCG_FLOOR = 0.9


# --- the catalog the cases are judged against ----------------------------------------------------


def api_shape(product: Product) -> Product:
    """A sample product as the search API returns it (brand and in_stock derived)."""
    brand = product["attributes"].get("brand")
    return product | {"brand": brand, "in_stock": (product.get("stock") or 0) > 0}


@cache
def catalog() -> tuple[Product, ...]:
    """The sample catalog, in the API's product shape."""
    return tuple(api_shape(p.model_dump(mode="json")) for p in sample_products())


@cache
def by_sku() -> dict[str, Product]:
    return {p["sku"]: p for p in catalog()}


def attribute_of(sku: str, name: str) -> str:
    """An identifier (ISBN, GTIN) of a sample product, read from the data, not hard-coded."""
    return str(by_sku()[sku]["attributes"][name])


# --- text helpers: accent- and case-folded words -------------------------------------------------


def fold(text: str) -> str:
    """Lower case without diacritics ("Crème Brûlée" -> "creme brulee")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold(text))


def name_words(p: Product) -> set[str]:
    return set(words(p["name"]))


def text_words(p: Product) -> set[str]:
    return set(words(f"{p['name']} {p['description']}"))


def in_name(*terms: str) -> Predicate:
    """Every term (folded) is a word of the name."""
    wanted = [fold(t) for t in terms]
    return lambda p: all(t in name_words(p) for t in wanted)


def in_text(*terms: str) -> Predicate:
    """Every term (folded) is a word of the name or the description."""
    wanted = [fold(t) for t in terms]
    return lambda p: all(t in text_words(p) for t in wanted)


def phrase_in_text(phrase: str) -> Predicate:
    """The words of `phrase`, adjacent and in order, in the name or the description."""
    wanted = " ".join(words(phrase))
    return lambda p: any(
        f" {wanted} " in f" {' '.join(words(p[part]))} " for part in ("name", "description")
    )


# --- product predicates --------------------------------------------------------------------------


def category(*slugs: str) -> Predicate:
    return lambda p: p["category"] in slugs


def attr(name: str, *values: Any) -> Predicate:
    return lambda p: p["attributes"].get(name) in values


def attr_true(name: str) -> Predicate:
    return lambda p: p["attributes"].get(name) is True


def attr_contains(name: str, text: str) -> Predicate:
    return lambda p: fold(text) in fold(str(p["attributes"].get(name, "")))


def brand(*names: str) -> Predicate:
    wanted = {fold(n) for n in names}
    return lambda p: fold(str(p["attributes"].get("brand") or "")) in wanted


def sku(value: str) -> Predicate:
    return lambda p: p["sku"] == value


def all_of(*predicates: Predicate) -> Predicate:
    return lambda p: all(pred(p) for pred in predicates)


def any_of(*predicates: Predicate) -> Predicate:
    return lambda p: any(pred(p) for pred in predicates)


def not_(predicate: Predicate) -> Predicate:
    return lambda p: not predicate(p)


def graded(exact: Predicate, related: Predicate | None = None) -> Grader:
    """2 when `exact` holds, 1 when `related` does, else 0."""
    return lambda p: 2 if exact(p) else (1 if related is not None and related(p) else 0)


HEADPHONES = category("headphones")
NAMED_HEADPHONES = all_of(HEADPHONES, in_name("headphones"))
WIRELESS = attr_true("wireless")
LAPTOPS = category("laptops")
PHONES = category("phones")
BOOKS = category("books")
RUNNING_SHOES = category("running-shoes")
MONITORS = category("monitors")
KEYBOARDS = category("keyboards")
CAMERAS = category("cameras")
TENTS = all_of(category("outdoor"), attr("type", "tent"))


# --- the filters of the contract, as a predicate -------------------------------------------------


def category_name(slug: str) -> str:
    """The contract's category name: the slug title-cased ("running-shoes" -> "Running Shoes")."""
    return slug.replace("-", " ").title()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _attribute_matches(condition: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """One attribute condition: eq (default) matches 10, 10.0 or "10"; the others are numeric."""
    if condition["name"] not in attributes:
        return False
    actual, wanted, op = (
        attributes[condition["name"]],
        condition["value"],
        condition.get("op", "eq"),
    )
    if op == "eq":
        if _number(actual) is not None and _number(wanted) is not None:
            return _number(actual) == _number(wanted)
        if isinstance(actual, str) and _number(wanted) is not None:
            try:
                return float(actual) == _number(wanted)
            except ValueError:
                return False
        return bool(actual == wanted)
    a, w = _number(actual), _number(wanted)
    if a is None or w is None:
        return False
    return {"gt": a > w, "gte": a >= w, "lt": a < w, "lte": a <= w}[op]


def matches_filters(filters: dict[str, Any] | None, p: Product) -> bool:
    """Whether `p` satisfies the contract's `filters` object."""
    if not filters:
        return True
    if "categories" in filters:
        wanted = {fold(c) for c in filters["categories"]}
        if not wanted & {fold(p["category"]), fold(category_name(p["category"]))}:
            return False
    if "brands" in filters:
        if fold(str(p["attributes"].get("brand") or "")) not in {
            fold(b) for b in filters["brands"]
        }:
            return False
    price = filters.get("price") or {}
    if price.get("min") is not None and p["price_cents"] < price["min"]:
        return False
    if price.get("max") is not None and p["price_cents"] > price["max"]:
        return False
    if filters.get("in_stock") and not (p.get("stock") or 0) > 0:
        return False
    return all(_attribute_matches(c, p["attributes"]) for c in filters.get("attributes", []))


# --- cases and their outcomes --------------------------------------------------------------------


@dataclass
class Outcome:
    """What one backend answered for one case."""

    backend: str
    case: Case
    page: list[Product]  # the first page (PAGE_LIMIT results)
    messages: list[dict[str, Any]]
    total_count: int
    everything: list[Product] | None = None  # every page, when the case walks
    errors: list[str] = field(default_factory=list)
    interpreted: dict[str, Any] | None = None  # the response's `interpreted` block (issue 18)

    @property
    def results(self) -> list[Product]:
        """Every page when walked, else the first page."""
        return self.everything if self.everything is not None else self.page

    def grades(self, depth: int = NDCG_DEPTH) -> list[int]:
        return [self.case.judge(p) for p in self.page[:depth]]

    def ndcg(self) -> float:
        return ndcg_at(self.case, self.page)


Check = Callable[[Outcome], str | None]


@dataclass(frozen=True, eq=False)  # hashed by identity (for the cached ideal DCG)
class Case:
    """One judged search: the request, the grader and the hard checks."""

    id: str
    query: str | None
    grade: Grader
    filters: dict[str, Any] | None = None
    sort: str | None = None
    checks: tuple[Check, ...] = ()
    walk: bool = False  # fetch every page: filters and checks then hold over all results
    note: str = ""

    def judge(self, p: Product) -> int:
        return self.grade(p) if matches_filters(self.filters, p) else 0

    def effective_sort(self) -> str:
        return self.sort or ("relevance" if self.query else "sku")

    def body(self, limit: int, cursor: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"pagination": {"limit": limit, "cursor": cursor}}
        if self.query is not None:
            body["query"] = self.query
        if self.filters is not None:
            body["filters"] = self.filters
        if self.sort is not None:
            body["sort"] = self.sort
        return body


def dcg(grades: Sequence[int]) -> float:
    return sum(((1 << g) - 1) / math.log2(rank + 2) for rank, g in enumerate(grades[:NDCG_DEPTH]))


@cache
def ideal_dcg(case: Case) -> float:
    return dcg(sorted((case.judge(p) for p in catalog()), reverse=True)[:NDCG_DEPTH])


def ndcg_at(case: Case, ranked: Sequence[Product]) -> float:
    """nDCG@10 of `ranked` against the best possible ranking of the whole catalog."""
    ideal = ideal_dcg(case)
    if ideal == 0:
        return 1.0 if not ranked else 0.0
    return dcg([case.judge(p) for p in ranked]) / ideal


# --- hard checks ---------------------------------------------------------------------------------


def _label(p: Product) -> str:
    return f"{p['sku']} {p['name']!r}"


def first(predicate: Predicate, what: str) -> Check:
    """The first result satisfies `predicate`."""

    def check(o: Outcome) -> str | None:
        if not o.page:
            return f"expected {what} first, got no results"
        return None if predicate(o.page[0]) else f"expected {what} first, got {_label(o.page[0])}"

    return check


def top(n: int, predicate: Predicate, what: str) -> Check:
    """Each of the first `n` results satisfies `predicate` (and there are at least `n`)."""

    def check(o: Outcome) -> str | None:
        head = o.page[:n]
        if len(head) < n:
            return f"expected at least {n} results ({what}), got {len(head)}"
        wrong = [_label(p) for p in head if not predicate(p)]
        return f"top {n} should all be {what}; not: {wrong}" if wrong else None

    return check


def every(predicate: Predicate, what: str) -> Check:
    """Every result (all pages when walked) satisfies `predicate`."""

    def check(o: Outcome) -> str | None:
        wrong = [_label(p) for p in o.results if not predicate(p)]
        return f"{len(wrong)} result(s) not {what}, e.g. {wrong[:3]}" if wrong else None

    return check


def never(predicate: Predicate, what: str) -> Check:
    """No result (all pages when walked) satisfies `predicate`."""

    def check(o: Outcome) -> str | None:
        wrong = [(i + 1, _label(p)) for i, p in enumerate(o.results) if predicate(p)]
        return (
            f"{len(wrong)} result(s) are {what}, e.g. (rank, product) {wrong[:3]}"
            if wrong
            else None
        )

    return check


def before(above: Predicate, below: Predicate, what: str) -> Check:
    """Every result satisfying `above` ranks before every result satisfying `below`."""

    def check(o: Outcome) -> str | None:
        ranks_above = [i for i, p in enumerate(o.results) if above(p)]
        ranks_below = [i for i, p in enumerate(o.results) if below(p)]
        if not ranks_above:
            return f"{what}: none of the expected results came back"
        if ranks_below and min(ranks_below) < max(ranks_above):
            first_below = o.results[min(ranks_below)]
            return (
                f"{what}: {_label(first_below)} at rank {min(ranks_below) + 1}, "
                f"before the last expected one at rank {max(ranks_above) + 1}"
            )
        return None

    return check


def includes(predicate: Predicate, what: str, within: int | None = None) -> Check:
    """Some result (within the first `within`, or any when walked) satisfies `predicate`."""

    def check(o: Outcome) -> str | None:
        pool = o.results[:within] if within else o.results
        return None if any(predicate(p) for p in pool) else f"no {what} among the results"

    return check


def suggests(*suggestions: str) -> Check:
    """A `did_you_mean` message whose suggestion is one of `suggestions` (folded)."""

    def check(o: Outcome) -> str | None:
        got = [
            fold(str(m.get("suggestion") or ""))
            for m in o.messages
            if m.get("code") == "did_you_mean"
        ]
        if any(s in {fold(x) for x in suggestions} for s in got):
            return None
        return f"expected did_you_mean {suggestions}, got messages {o.messages}"

    return check


def ordered_by_price(descending: bool = False) -> Check:
    """Prices are monotone over the results (all pages when walked)."""

    def check(o: Outcome) -> str | None:
        prices = [p["price_cents"] for p in o.results]
        pairs = list(zip(prices, prices[1:], strict=False))
        bad = [i for i, (a, b) in enumerate(pairs) if (a < b if descending else a > b)]
        if bad:
            i = bad[0]
            return f"price order broken at rank {i + 1}->{i + 2}: {prices[i]} then {prices[i + 1]}"
        return None

    return check


def ordered_by_sku() -> Check:
    def check(o: Outcome) -> str | None:
        skus = [p["sku"] for p in o.results]
        return None if skus == sorted(skus) else f"not in SKU order: {skus[:10]}…"

    return check


def at_least(n: int) -> Check:
    def check(o: Outcome) -> str | None:
        found = len(o.results) if o.everything is not None else o.total_count
        return None if found >= n else f"expected at least {n} results, got {found}"

    return check


# --- the cases -----------------------------------------------------------------------------------

SKU_QUERY = "LAP-00003"
ISBN_SKU = "BOK-00002"
GTIN_SKUS = ("HPH-00004", "KBD-00001")
RAM_16 = attr("ram_gb", 16)


def _cases() -> list[Case]:
    isbn = attribute_of(ISBN_SKU, "isbn")
    gtin_a, gtin_b = (attribute_of(s, "gtin") for s in GTIN_SKUS)
    is_named = in_name
    wireless_named = all_of(NAMED_HEADPHONES, WIRELESS)
    wireless_hph = all_of(HEADPHONES, WIRELESS)
    cases = [
        # exact identifiers rank first
        Case(
            "sku-exact",
            SKU_QUERY,
            graded(sku(SKU_QUERY)),
            checks=(first(sku(SKU_QUERY), SKU_QUERY),),
        ),
        Case(
            "sku-lowercase",
            SKU_QUERY.lower(),
            graded(sku(SKU_QUERY)),
            checks=(first(sku(SKU_QUERY), SKU_QUERY),),
        ),
        Case(
            "sku-extra",
            "hph-00261",
            graded(sku("HPH-00261")),
            checks=(first(sku("HPH-00261"), "HPH-00261"),),
        ),
        Case("isbn", isbn, graded(sku(ISBN_SKU)), checks=(first(sku(ISBN_SKU), ISBN_SKU),)),
        Case(
            "isbn-accented-book",
            "9781917352048",
            graded(attr("isbn", "9781917352048")),
            checks=(first(attr("isbn", "9781917352048"), "the book with that ISBN"),),
        ),
        Case(
            "gtin",
            gtin_a,
            graded(sku(GTIN_SKUS[0])),
            checks=(first(sku(GTIN_SKUS[0]), GTIN_SKUS[0]),),
        ),
        Case(
            "gtin-keyboard",
            gtin_b,
            graded(sku(GTIN_SKUS[1])),
            checks=(first(sku(GTIN_SKUS[1]), GTIN_SKUS[1]),),
        ),
        # product types, singular and plural
        Case("laptop", "laptop", graded(LAPTOPS), checks=(top(10, LAPTOPS, "laptops"),)),
        Case("laptops", "laptops", graded(LAPTOPS), checks=(top(10, LAPTOPS, "laptops"),)),
        Case(
            "shoes",
            "shoes",
            graded(RUNNING_SHOES),
            checks=(top(10, RUNNING_SHOES, "running shoes"),),
        ),
        Case(
            "running-shoes",
            "running shoes",
            graded(RUNNING_SHOES),
            checks=(top(10, RUNNING_SHOES, "running shoes"),),
        ),
        Case(
            "headphone-singular",
            "headphone",
            graded(NAMED_HEADPHONES, HEADPHONES),
            checks=(top(10, HEADPHONES, "headphones"),),
        ),
        Case(
            "phone",
            "phone",
            graded(PHONES),
            walk=True,
            checks=(
                before(PHONES, HEADPHONES, "phones above headphones"),
                top(10, PHONES, "phones"),
            ),
        ),
        Case(
            "book",
            "book",
            graded(BOOKS),
            walk=True,
            checks=(never(LAPTOPS, "laptops (SwiftBook, ProBook)"), top(10, BOOKS, "books")),
        ),
        Case(
            "monitor",
            "monitor",
            graded(MONITORS, HEADPHONES),
            note="in-ear monitors are headphones: related, not wanted first (judged only)",
        ),
        # several words: every word counts
        Case(
            "wireless-headphones",
            "wireless headphones",
            graded(wireless_named, wireless_hph),
            checks=(top(10, wireless_hph, "wireless headphones"),),
        ),
        Case(
            "word-order",
            "headphones wireless",
            graded(wireless_named, wireless_hph),
            checks=(top(10, wireless_hph, "wireless headphones"),),
        ),
        Case(
            "laptop-16gb",
            "laptop 16GB",
            graded(all_of(LAPTOPS, RAM_16), LAPTOPS),
            checks=(top(5, all_of(LAPTOPS, RAM_16), "16GB laptops"),),
        ),
        Case(
            "ryzen-9-laptop",
            "ryzen 9 laptop",
            graded(all_of(LAPTOPS, attr_contains("cpu", "Ryzen 9")), LAPTOPS),
            checks=(top(5, attr_contains("cpu", "Ryzen 9"), "Ryzen 9 laptops"),),
        ),
        Case(
            "noise-cancelling-headphones",
            "noise cancelling headphones",
            graded(all_of(HEADPHONES, attr_true("noise_cancelling")), HEADPHONES),
        ),
        Case(
            "espresso-machine",
            "espresso machine",
            graded(attr("type", "espresso machine"), attr("grind", "espresso")),
            checks=(top(5, attr("type", "espresso machine"), "espresso machines"),),
        ),
        Case(
            "expresso-typo",
            "expresso machine",
            graded(attr("type", "espresso machine"), attr("grind", "espresso")),
            note="a common misspelling; judged only",
        ),
        Case(
            "cast-iron-skillet",
            "cast iron skillet",
            graded(attr("type", "cast iron skillet")),
            checks=(top(5, attr("type", "cast iron skillet"), "cast iron skillets"),),
        ),
        Case(
            "mechanical-keyboard-tkl",
            "mechanical keyboard tkl",
            graded(all_of(KEYBOARDS, attr("layout", "tkl")), KEYBOARDS),
        ),
        Case(
            "mirrorless-camera",
            "mirrorless camera",
            graded(all_of(CAMERAS, attr("type", "mirrorless")), CAMERAS),
            checks=(top(5, attr("type", "mirrorless"), "mirrorless cameras"),),
        ),
        Case(
            "ethiopia-coffee",
            "ethiopia coffee",
            graded(
                all_of(attr("kind", "beans"), attr("origin", "Ethiopia")), attr("kind", "beans")
            ),
        ),
        Case(
            "4-season-tent",
            "4 season tent",
            graded(all_of(TENTS, attr("seasons", 4)), TENTS),
        ),
        Case(
            "jigsaw-1000",
            "jigsaw puzzle 1000 pieces",
            graded(
                all_of(attr("type", "jigsaw puzzle"), attr("pieces", 1000)),
                attr("type", "jigsaw puzzle"),
            ),
        ),
        Case(
            "down-sleeping-bag",
            "down sleeping bag",
            graded(
                all_of(attr("type", "sleeping bag"), attr("fill", "down")),
                attr("type", "sleeping bag"),
            ),
            note="'down' is an English stop word (judged only)",
        ),
        Case(
            "on-ear-headphones",
            "on-ear headphones",
            graded(all_of(HEADPHONES, attr("type", "on-ear")), NAMED_HEADPHONES),
            note="'on' is an English stop word: the hyphenated type should count (judged only)",
        ),
        Case(
            "over-ear-headphones",
            "over ear headphones",
            graded(all_of(HEADPHONES, attr("type", "over-ear")), NAMED_HEADPHONES),
            note="'over' is an English stop word (judged only)",
        ),
        Case(
            "womens-trail-running-shoes",
            "women's trail running shoes",
            graded(
                all_of(RUNNING_SHOES, attr("gender", "women"), attr("surface", "trail")),
                all_of(RUNNING_SHOES, any_of(attr("gender", "women"), attr("surface", "trail"))),
            ),
        ),
        Case(
            "sonaro-earbuds",
            "sonaro earbuds",
            graded(
                all_of(brand("Sonaro"), attr("type", "earbuds")),
                any_of(brand("Sonaro"), attr("type", "earbuds")),
            ),
            checks=(top(5, all_of(brand("Sonaro"), attr("type", "earbuds")), "Sonaro earbuds"),),
        ),
        Case(
            "name-beats-description",
            "oled",
            graded(is_named("oled"), in_text("oled")),
            note="OLED monitors say it in the name; phones only in the description",
            checks=(top(10, is_named("oled"), "products with OLED in the name"),),
        ),
        # accents: folded both ways
        Case(
            "accents-cafe-lumiere",
            "cafe lumiere",
            graded(attr("roaster", "Café Lumière")),
            checks=(first(attr("roaster", "Café Lumière"), "Café Lumière coffee"),),
        ),
        Case(
            "accents-muller",
            "muller",
            graded(brand("Müller & Söhne")),
            checks=(first(brand("Müller & Söhne"), "the Müller & Söhne knife"),),
        ),
        Case(
            "accents-muller-knife",
            "Müller knife",
            graded(brand("Müller & Söhne")),
            checks=(first(brand("Müller & Söhne"), "the Müller & Söhne knife"),),
        ),
        Case(
            "accents-senor",
            "senor",
            graded(is_named("senor")),
            checks=(top(2, is_named("senor"), "Señor products"),),
        ),
        Case(
            "accents-oresund",
            "oresund headphones",
            graded(brand("Öresund Audio")),
            checks=(first(brand("Öresund Audio"), "the Öresund Audio headphones"),),
        ),
        Case(
            "accents-creme-brulee",
            "creme brulee",
            graded(is_named("creme", "brulee"), in_text("creme", "brulee")),
            checks=(first(is_named("creme", "brulee"), "Crème Brûlée (the book)"),),
        ),
        Case(
            "accents-query-creme-fraiche",
            "crème fraîche",
            graded(is_named("creme", "fraiche")),
            note="accented query, unaccented name",
            checks=(first(is_named("creme", "fraiche"), "Creme Fraiche Weeknights"),),
        ),
        Case(
            "accents-nandu",
            "Ñandú",
            graded(brand("Ñandú")),
            checks=(first(brand("Ñandú"), "the Ñandú shoe"),),
        ),
        Case(
            "accents-nandu-folded",
            "nandu running shoe",
            graded(brand("Ñandú")),
            checks=(first(brand("Ñandú"), "the Ñandú shoe"),),
        ),
        Case(
            "accents-bergwarts-tent",
            "bergwarts tent",
            graded(brand("Bergwärts")),
            checks=(first(brand("Bergwärts"), "the Bergwärts tent"),),
        ),
        Case(
            "accents-mondemon",
            "mondemon",
            graded(brand("Jouéclair")),
            checks=(first(brand("Jouéclair"), "the Mondémon card game"),),
        ),
        # the last word is also a prefix
        Case(
            "prefix-headph",
            "headph",
            graded(HEADPHONES),
            checks=(top(10, HEADPHONES, "headphones"),),
        ),
        Case(
            "prefix-wireless-headph",
            "wireless headph",
            graded(wireless_named, wireless_hph),
            checks=(top(10, wireless_hph, "wireless headphones"),),
        ),
        Case(
            "prefix-mirrorl",
            "mirrorl",
            graded(attr("type", "mirrorless"), CAMERAS),
            checks=(top(5, attr("type", "mirrorless"), "mirrorless cameras"),),
        ),
        # typos: a suggestion and the corrected results
        Case(
            "typo-hedphones",
            "hedphones",
            graded(HEADPHONES),
            checks=(suggests("headphones", "headphone"), top(5, HEADPHONES, "headphones")),
        ),
        Case(
            "typo-laptpo",
            "laptpo",
            graded(LAPTOPS),
            checks=(suggests("laptop", "laptops"), top(5, LAPTOPS, "laptops")),
        ),
        # websearch syntax
        Case(
            "exclude-wireless",
            "headphones -wireless",
            graded(all_of(HEADPHONES, not_(in_text("wireless")))),
            walk=True,
            checks=(never(in_text("wireless"), "products that say 'wireless'"), at_least(1)),
        ),
        Case(
            "exclude-gaming",
            "laptop -gaming",
            graded(all_of(LAPTOPS, not_(in_text("gaming")))),
            walk=True,
            checks=(never(in_text("gaming"), "products that say 'gaming'"), at_least(20)),
        ),
        Case(
            "phrase-red-fox",
            '"red fox"',
            graded(phrase_in_text("red fox")),
            walk=True,
            checks=(every(phrase_in_text("red fox"), "with the phrase 'red fox'"), at_least(1)),
        ),
        Case(
            "phrase-noise-cancelling",
            '"noise cancelling"',
            graded(all_of(HEADPHONES, phrase_in_text("noise cancelling"))),
            walk=True,
            checks=(
                every(phrase_in_text("noise cancelling"), "with 'noise cancelling'"),
                at_least(1),
            ),
        ),
        Case(
            "or-tent-backpack",
            "tent or backpack",
            graded(attr("type", "tent", "backpack")),
            walk=True,
            checks=(
                every(any_of(in_text("tent"), in_text("backpack")), "a tent or a backpack"),
                includes(attr("type", "tent"), "tent"),
                includes(attr("type", "backpack"), "backpack"),
            ),
        ),
        # filters: never violated, over all pages (checked for every case with filters)
        Case(
            "filter-category-slug",
            "wireless",
            graded(wireless_hph),
            filters={"categories": ["headphones"]},
            walk=True,
        ),
        Case(
            "filter-category-name",
            "trail",
            graded(attr("surface", "trail"), RUNNING_SHOES),
            filters={"categories": ["RUNNING shoes"]},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-brand",
            "headphones",
            graded(NAMED_HEADPHONES, HEADPHONES),
            filters={"brands": ["sonaro"]},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-price",
            "laptop",
            graded(LAPTOPS),
            filters={"price": {"min": 100_000, "max": 150_000}},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-in-stock",
            "espresso machine",
            graded(attr("type", "espresso machine"), attr("grind", "espresso")),
            filters={"in_stock": True},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-attr-eq-number",
            "kinetix",
            graded(brand("Kinetix")),
            filters={
                "categories": ["running-shoes"],
                "attributes": [{"name": "size", "value": 10}],
            },
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-attr-gte",
            "laptop",
            graded(LAPTOPS),
            filters={"attributes": [{"name": "ram_gb", "op": "gte", "value": 32}]},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-attr-eq-string",
            "monitor",
            graded(MONITORS),
            filters={"attributes": [{"name": "panel", "value": "OLED"}]},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-attr-lt",
            "tent",
            graded(TENTS),
            filters={"attributes": [{"name": "weight_kg", "op": "lt", "value": 2.5}]},
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-combined",
            "laptop",
            graded(LAPTOPS),
            filters={
                "brands": ["Aster", "halden"],
                "price": {"max": 150_000},
                "in_stock": True,
                "attributes": [{"name": "ram_gb", "op": "gte", "value": 16}],
            },
            walk=True,
            checks=(at_least(1),),
        ),
        Case(
            "filter-only-sku-order",
            None,
            graded(BOOKS),
            filters={
                "categories": ["Books"],
                "attributes": [{"name": "genre", "value": "mystery"}],
            },
            walk=True,
            checks=(ordered_by_sku(), at_least(20)),
        ),
        # sorts: monotone over all pages
        Case(
            "sort-price-asc",
            "headphones",
            graded(HEADPHONES),
            sort="price_asc",
            walk=True,
            checks=(ordered_by_price(), at_least(100)),
        ),
        Case(
            "sort-price-desc",
            "laptop",
            graded(LAPTOPS),
            filters={"in_stock": True},
            sort="price_desc",
            walk=True,
            checks=(ordered_by_price(descending=True), at_least(100)),
        ),
    ]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


CASES: list[Case] = _cases()
