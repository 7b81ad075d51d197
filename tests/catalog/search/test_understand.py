"""Query understanding (issue 18): `understand(query, profile)` on a hand-built catalog profile.

Pure unit tests, no database: each states one rule of app/catalog/search/understand.py — prices
in words, what is *not* a price, price intent, numbers with a unit or an attribute name, boolean
attributes, values and categories as boosts, filler words, and the syntax left untouched — and a
property test that reading never fails and never invents text.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.catalog.search.profile import CatalogProfile
from app.catalog.search.schemas import MAX_QUERY_LENGTH
from app.catalog.search.text import CATEGORY_FACT, parse, words
from app.catalog.search.understand import Reading, understand

# (name, kind, value, products): what `search_attributes` would hold for a small catalog
PROFILE = CatalogProfile.of(
    [
        ("ram_gb", "n", "8", 3),
        ("ram_gb", "n", "16", 5),
        ("ram_gb", "n", "32", 2),
        ("storage_gb", "n", "256", 4),
        ("storage_gb", "n", "512", 4),
        ("storage_gb", "n", "1024", 2),
        ("screen_in", "n", "15.6", 3),
        ("screen_in", "n", "27", 2),
        ("refresh_hz", "n", "60", 2),
        ("refresh_hz", "n", "144", 2),
        ("capacity_l", "n", "1.7", 2),
        ("seasons", "n", "3", 2),
        ("seasons", "n", "4", 1),
        ("pieces", "n", "1000", 2),
        ("size", "n", "9", 2),
        ("size", "n", "10", 2),
        ("size", "n", "10.5", 1),
        ("weight_kg", "n", "1.5", 2),
        ("capacity_people", "n", "2", 2),
        ("wattage", "n", "65", 1),
        ("wireless", "b", "true", 6),
        ("wireless", "b", "false", 2),
        ("noise_cancelling", "b", "true", 3),
        ("color", "t", "black", 6),
        ("color", "t", "red", 2),
        ("gender", "t", "women", 3),
        ("fit", "t", "over-ear", 2),
        ("brand", "t", "sony", 3),
        (CATEGORY_FACT, "t", "laptops", 6),
        (CATEGORY_FACT, "t", "running-shoes", 4),
        (CATEGORY_FACT, "t", "headphones", 5),
    ]
)


def read(query: str) -> Reading:
    return understand(query, PROFILE)


def conditions(reading: Reading) -> list[tuple[str, str, Any]]:
    """Every attribute condition read, as (name, op, value)."""
    return [(c.name, c.op, c.value) for w in reading.attributes for c in w.conditions]


def boosts(reading: Reading) -> list[tuple[str, str, Any]]:
    return [(c.name, c.op, c.value) for w in reading.boosts for c in w.conditions]


def no_price(reading: Reading) -> bool:
    return reading.price_min is None and reading.price_max is None and not reading.price_source


# --- prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "low", "high"),
    [
        ("under $1500", None, 149999),  # "under" is strict
        ("below 1,500 dollars", None, 149999),
        ("less than $50", None, 4999),
        ("over $100", 10001, None),  # "over" is strict
        ("more than 100", 10001, None),
        ("between $50 and $100", 5000, 10000),  # a range is inclusive at both ends
        ("$50-100", 5000, 10000),
        ("under 1.5k", None, 149999),
        ("≤ 50", None, 5000),  # inclusive
        ("$50 or less", None, 5000),
        ("$80+", 8000, None),
    ],
)
def test_price_words_become_a_price_filter_in_cents(
    query: str, low: int | None, high: int | None
) -> None:
    reading = read(query)
    assert (reading.price_min, reading.price_max) == (low, high)
    assert reading.price_source == query
    assert reading.text == ""
    assert reading.attributes == ()


def test_a_price_leaves_the_other_words_as_text() -> None:
    reading = read("gaming laptop under $1500")
    assert reading.text == "gaming laptop"
    assert (reading.price_min, reading.price_max) == (None, 149999)
    assert reading.price_source == "under $1500"


def test_a_reversed_range_is_ordered() -> None:
    reading = read("between 100 and 50")
    assert (reading.price_min, reading.price_max) == (5000, 10000)


def test_a_number_followed_by_a_weight_unit_is_a_weight_not_a_price() -> None:
    reading = read("tent under 2 kg")
    assert no_price(reading)
    assert conditions(reading) == [("weight_kg", "lt", 2)]
    assert reading.text == "tent"


def test_a_number_of_people_is_not_a_price() -> None:
    reading = read("tent over 4 people")
    assert no_price(reading)
    assert conditions(reading) == [("capacity_people", "gt", 4)]


@pytest.mark.parametrize("query", ["4k monitor", "ryzen 9"])
def test_a_bare_number_without_currency_is_text(query: str) -> None:
    reading = read(query)
    assert no_price(reading)
    assert reading.attributes == ()
    assert reading.text == query


def test_a_year_after_from_is_not_a_minimum_price() -> None:
    reading = read("books from 2020")
    assert no_price(reading)
    assert reading.text == "books 2020"


# --- price intent ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["cheap", "budget", "affordable", "inexpensive"])
def test_low_price_words_order_cheapest_first_and_are_not_text(word: str) -> None:
    reading = read(f"{word} laptop")
    assert reading.intent == -1
    assert reading.intent_source == word
    assert reading.text == "laptop"
    assert no_price(reading)


@pytest.mark.parametrize("word", ["premium", "high-end", "high end", "luxury"])
def test_high_price_words_order_dearest_first_and_are_not_text(word: str) -> None:
    reading = read(f"{word} laptop")
    assert reading.intent == 1
    assert reading.intent_source == word
    assert reading.text == "laptop"


def test_price_intent_and_a_price_read_together() -> None:
    reading = read("cheap laptop under $800")
    assert (reading.intent, reading.price_max, reading.text) == (-1, 79999, "laptop")


# --- numbers with a unit or an attribute name ------------------------------------------------


def test_gb_picks_the_attribute_that_has_the_value() -> None:
    assert conditions(read("16gb laptop")) == [("ram_gb", "eq", 16)]  # not storage_gb
    assert conditions(read("512gb laptop")) == [("storage_gb", "eq", 512)]  # not ram_gb


def test_gb_with_a_value_no_attribute_has_reads_every_gb_attribute() -> None:
    assert conditions(read("64gb laptop")) == [("ram_gb", "eq", 64), ("storage_gb", "eq", 64)]


def test_an_attribute_word_next_to_the_unit_qualifies_it() -> None:
    reading = read("32 GB RAM laptop")
    assert conditions(reading) == [("ram_gb", "eq", 32)]
    assert reading.attributes[0].source == "32 GB RAM"
    assert reading.text == "laptop"


def test_a_number_and_a_separate_unit_word() -> None:
    reading = read("16 gb laptop")
    assert conditions(reading) == [("ram_gb", "eq", 16)]
    assert reading.attributes[0].source == "16 gb"


def test_tb_is_read_as_1024_on_gb_attributes() -> None:
    assert conditions(read("1tb laptop")) == [("storage_gb", "eq", 1024)]


@pytest.mark.parametrize(
    ("query", "expected", "source"),
    [
        ("27 inch monitor", ("screen_in", "eq", 27), "27 inch"),
        ('27" monitor', ("screen_in", "eq", 27), '27"'),
        ("144hz monitor", ("refresh_hz", "eq", 144), "144hz"),
        ("1.7 litre kettle", ("capacity_l", "eq", 1.7), "1.7 litre"),
        ("4-season tent", ("seasons", "eq", 4), "4-season"),
        ("1000 pieces puzzle", ("pieces", "eq", 1000), "1000 pieces"),
        ("2 person tent", ("capacity_people", "eq", 2), "2 person"),
    ],
)
def test_a_number_with_a_unit_is_an_attribute_condition(
    query: str, expected: tuple[str, str, Any], source: str
) -> None:
    reading = read(query)
    assert conditions(reading) == [expected]
    assert reading.attributes[0].source == source
    assert reading.text == query.split()[-1]  # the product word is left to match
    assert no_price(reading)


def test_at_least_reads_gte_on_the_attribute_whose_range_holds_it() -> None:
    reading = read("at least 16gb laptop")
    assert conditions(reading) == [("ram_gb", "gte", 16)]  # storage_gb starts at 256
    assert reading.attributes[0].source == "at least 16gb"
    assert reading.text == "laptop"


def test_or_more_after_the_unit_reads_gte() -> None:
    reading = read("16gb or more laptop")
    assert conditions(reading) == [("ram_gb", "gte", 16)]
    assert reading.attributes[0].source == "16gb or more"
    assert reading.text == "laptop"


def test_a_plus_after_the_unit_reads_gte() -> None:
    assert conditions(read("16gb+ laptop")) == [("ram_gb", "gte", 16)]


@pytest.mark.parametrize(("query", "value"), [("size 10", 10), ("size 10.5", 10.5)])
def test_an_attribute_name_before_a_number_reads_that_attribute(query: str, value: float) -> None:
    reading = read(f"running shoes {query}")
    assert conditions(reading) == [("size", "eq", value)]
    assert reading.attributes[0].source == query
    assert reading.text == "running shoes"


def test_the_fallback_text_keeps_the_words_of_the_conditions() -> None:
    reading = read("running shoes size 10")
    assert reading.fallback_text == "running shoes size 10"


def test_a_unit_the_catalog_has_no_attribute_for_stays_text() -> None:
    reading = read("65mah battery")  # no attribute ends in `_mah`
    assert reading.attributes == ()
    assert reading.text == "65mah battery"


# --- boolean attributes ---------------------------------------------------------------------


def test_a_flag_word_is_a_condition() -> None:
    reading = read("wireless headphones")
    assert conditions(reading) == [("wireless", "eq", True)]
    assert reading.text == "headphones"
    assert reading.fallback_text == "wireless headphones"


@pytest.mark.parametrize("phrase", ["noise cancelling", "noise-cancelling"])
def test_a_flag_named_in_several_words(phrase: str) -> None:
    reading = read(f"{phrase} headphones")
    assert conditions(reading) == [("noise_cancelling", "eq", True)]
    assert reading.attributes[0].source == phrase
    assert reading.text == "headphones"


def test_a_flag_alone_stays_a_text_word() -> None:
    reading = read("wireless")
    assert reading.attributes == ()
    assert reading.text == "wireless"


def test_in_stock_is_the_stock_filter() -> None:
    """`in` is filler alone (`headphones in black`), not in `in stock` (review: it was)."""
    reading = read("laptops in stock")
    assert (reading.in_stock, reading.in_stock_source) == (True, "in stock")
    assert reading.text == "laptops"


def test_in_after_a_number_is_inches() -> None:
    """A unit after a number is not filler (review: `in` was dropped first)."""
    reading = read("27 in monitor")
    assert conditions(reading) == [("screen_in", "eq", 27)]
    assert reading.text == "monitor"


# --- values and categories: boosts that stay text --------------------------------------------


@pytest.mark.parametrize(
    ("query", "source", "expected"),
    [
        ("black headphones", "black", ("color", "eq", "black")),
        ("women's running shoes", "women", ("gender", "eq", "women")),  # `'s` dropped (review)
        ("over-ear headphones", "over-ear", ("fit", "eq", "over-ear")),
        ("sony headphones", "sony", ("brand", "eq", "sony")),
    ],
)
def test_a_value_the_catalog_has_is_a_boost_and_stays_text(
    query: str, source: str, expected: tuple[str, str, Any]
) -> None:
    reading = read(query)
    assert boosts(reading) == [expected]
    assert reading.boosts[0].source == source
    assert reading.text == query.replace("'s", "")  # still required as a word
    assert reading.attributes == ()


def test_a_value_the_catalog_lacks_is_no_boost() -> None:
    assert read("purple headphones").boosts == ()


@pytest.mark.parametrize(
    ("query", "slug", "word"),
    [
        ("laptops", "laptops", "laptops"),
        ("gaming laptop", "laptops", "laptop"),  # singular or plural
        ("trail running shoes", "running-shoes", "running"),
    ],
)
def test_a_category_word_boosts_the_category_and_stays_text(
    query: str, slug: str, word: str
) -> None:
    reading = read(query)
    assert reading.categories == ((slug, word),)
    assert reading.text == query


# --- filler words ---------------------------------------------------------------------------


def test_show_me_is_ignored() -> None:
    reading = read("show me laptops")
    assert reading.text == "laptops"
    assert reading.ignored == ("show", "me")


def test_do_you_have_and_a_question_mark_are_ignored() -> None:
    reading = read("do you have laptops?")
    assert reading.ignored == ("do", "you", "have")
    assert parse(reading.text).all_words() == ["laptops"]


def test_find_best_for_with_are_ignored() -> None:
    reading = read("find best laptop for gaming with 16gb")
    assert reading.text == "laptop gaming"
    assert reading.ignored == ("find", "best", "for", "with")
    assert conditions(reading) == [("ram_gb", "eq", 16)]


def test_a_lone_question_mark_is_no_word() -> None:
    assert parse(read("laptops ?").text).all_words() == ["laptops"]


# --- syntax left as typed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        '"wireless headphones"',
        '"cheap" laptop',
        '"under $50" sign',
        '"16gb" laptop',
    ],
)
def test_a_quoted_phrase_is_left_untouched(query: str) -> None:
    reading = read(query)
    assert reading.text == query
    assert (reading.attributes, reading.intent, reading.boosts) == ((), 0, ())
    assert no_price(reading)


@pytest.mark.parametrize("query", ["headphones -black", "headphones -wireless", "laptop -16gb"])
def test_an_excluded_word_is_left_untouched(query: str) -> None:
    reading = read(query)
    assert reading.text == query
    assert (reading.attributes, reading.boosts) == ((), ())


@pytest.mark.parametrize(
    "query", ["black or red headphones", "wireless or wired headphones", "16gb or 32gb laptop"]
)
def test_the_terms_around_or_are_left_untouched(query: str) -> None:
    reading = read(query)
    assert reading.text == query
    assert (reading.attributes, reading.boosts) == ((), ())


# --- never fails, never invents -------------------------------------------------------------

PIECES = st.sampled_from(
    [
        *"$€£,.-+\"'<>=≤≥?!k ",
        " ",
        "  ",
        "gb",
        "tb",
        "inch",
        "size",
        "under",
        "over",
        "between",
        "and",
        "or",
        "more",
        "less",
        "than",
        "at least",
        "cheap",
        "high-end",
        "wireless",
        "noise",
        "cancelling",
        "black",
        "women's",
        "laptops",
        "in stock",
        "show me",
        "1",
        "16",
        "10.5",
        "1,500",
        "1.5k",
        "9" * 40,
        "é",
        "\u0301",
    ]
)
QUERIES = st.one_of(
    st.lists(PIECES, max_size=30).map("".join),
    st.text(max_size=80),
).map(lambda q: q[:MAX_QUERY_LENGTH])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERIES)
def test_understand_never_raises_and_its_text_comes_from_the_query(query: str) -> None:
    reading = understand(query, PROFILE)
    possessives = re.compile(r"['’]s(?=[^\w]*(\s|$))")  # `women's` is read as `women`
    for text in (reading.text, reading.fallback_text):
        for piece in text.split():
            assert piece in query or piece in possessives.sub("", query), (query, text)
        remaining = iter(words(query))  # its words are the query's, in order
        assert all(word in remaining for word in words(text)), (query, text)


def test_a_number_beyond_a_float_never_raises() -> None:
    """Review: 400 digits + `gb` made `_number` call round(inf)."""
    assert isinstance(understand("9" * 400 + "gb", PROFILE), Reading)


AGES = CatalogProfile.of(
    [("age_min", "n", "3", 5), ("age_min", "n", "8", 5), ("year", "n", "2020", 4)]
    + [(":category", "t", "toys", 10)]
)


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ("building set for an 8 year old", "8 year old"),
        ("toys for a 8-year-old", "8-year-old"),
        ("gift for 8 years old", "8 years old"),
        ("plush 8yo", "8yo"),
    ],
)
def test_a_childs_age_reads_a_minimum_age_at_most_it(query: str, source: str) -> None:
    """`8 year old` is an age (`age_min <= 8`), not the books' `year` (the bench caught it)."""
    reading = understand(query, AGES)
    assert [(c.name, c.op, c.value) for w in reading.attributes for c in w.conditions] == [
        ("age_min", "lte", 8)
    ]
    assert reading.attributes[0].source == source
    assert "year" not in reading.text and "8" not in reading.text.split()
