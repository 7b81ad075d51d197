"""A deterministic sample catalog (~3,000 products, 12 categories) for demos and local runs.

Seeded, offline and reproducible: the packaged `data/sample_catalog.jsonl.gz` is its output.
Rebuild it with `python -m app.catalog.sample app/catalog/data/sample_catalog.jsonl.gz`.
Brands, authors and publishers are invented, so no listing can be mistaken for a real offer.

Realistic enough to judge search (tests/catalog/test_search_relevance.py): names as shops write
them (type, brand, model, size), attributes a filter can use, a GTIN-13 on every branded product
(books carry an ISBN instead) and a few hand-written listings with accented names ("Café
Lumière", "Müller & Söhne", "Crème Brûlée…"), appended after each category's generated ones so
the generated SKUs keep their products. GTINs use the GS1 restricted-circulation prefix 2, so they
cannot collide with a real trade item.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.catalog.schemas import ProductIn

SEED = 20_241_124
SAMPLE_CATALOG = Path(__file__).with_name("data") / "sample_catalog.jsonl.gz"
COLORS = ("black", "white", "silver", "graphite", "navy", "red", "green", "sand", "blue")


@dataclass(frozen=True)
class Draft:
    """One generated product before it gets a SKU and stock."""

    name: str
    description: str
    price_cents: int
    attributes: dict[str, Any]


Maker = Callable[[random.Random], Draft]


def _price(dollars: float) -> int:
    """A shelf price in cents: $x.99 below $200, $xx9.99 above."""
    if dollars >= 200:
        return int(round(dollars / 10) * 10) * 100 - 1
    return max(1, round(dollars)) * 100 - 1


def _pick[T](rng: random.Random, options: Sequence[T]) -> T:
    """One of `options` (a typed `rng.choice`)."""
    return options[rng.randrange(len(options))]


def _cap(text: str) -> str:
    """Capitalise each word, leaving the rest alone ("chef's knife" -> "Chef's Knife", "RC")."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split())


# --- electronics -------------------------------------------------------------------------------

LAPTOP_LINES = {
    "Aster": ("SwiftBook", "ProBook X", "Aero"),
    "Halden": ("Vireo", "Vireo Pro", "Atlas"),
    "Corvid": ("Raven", "Raven Studio", "Talon Gaming"),
    "Nimbus": ("Cirrus", "Stratus", "Cumulus Max"),
    "Verity": ("Slate", "Slate Flip", "Forge"),
    "Kestrel": ("Glide", "Glide Ultra", "Hunter G"),
}
LAPTOP_CPUS = {  # full name: (short name, price premium in dollars)
    "Intel Core Ultra 5 125H": ("Core Ultra 5", 0),
    "Intel Core Ultra 7 155H": ("Core Ultra 7", 180),
    "AMD Ryzen 5 8640HS": ("Ryzen 5", 0),
    "AMD Ryzen 7 8845HS": ("Ryzen 7", 160),
    "AMD Ryzen 9 8945HS": ("Ryzen 9", 320),
    "Snapdragon X Plus": ("Snapdragon X Plus", 60),
    "Snapdragon X Elite": ("Snapdragon X Elite", 240),
}
LAPTOP_GPUS = (("integrated", 0), ("RTX 4050", 250), ("RTX 4060", 380), ("RTX 4070", 600))


def laptop(rng: random.Random) -> Draft:
    """A laptop configuration: screen, CPU, RAM, SSD, optional discrete GPU."""
    brand = _pick(rng, tuple(LAPTOP_LINES))
    line = _pick(rng, LAPTOP_LINES[brand])
    screen = _pick(rng, (13.3, 14.0, 15.6, 16.0, 17.3))
    cpu = _pick(rng, tuple(LAPTOP_CPUS))
    cpu_short, cpu_extra = LAPTOP_CPUS[cpu]
    ram = _pick(rng, (8, 16, 16, 32, 64))
    storage = _pick(rng, (256, 512, 512, 1024, 2048))
    gaming = "Gaming" in line or line.endswith(" G")
    gpu, gpu_extra = _pick(rng, LAPTOP_GPUS[1:]) if gaming else LAPTOP_GPUS[0]
    dollars = 520 + cpu_extra + gpu_extra + ram * 9 + storage * 0.12 + (screen - 13) * 40
    size = f"{screen:g}"
    disk = f"{storage // 1024}TB" if storage >= 1024 else f"{storage}GB"
    name = f'{brand} {line} {size}" Laptop ({cpu_short}, {ram}GB, {disk} SSD)'
    graphics = "integrated graphics" if gpu == "integrated" else f"{gpu} graphics"
    description = _pick(
        rng,
        (
            f"A {size}-inch laptop with {ram}GB of memory and {graphics}, built for long days.",
            f"{line} pairs the {cpu} with a {disk} SSD. Weighs {1.1 + (screen - 13) * 0.3:.1f} kg.",
            f"Thin {size}-inch chassis, {graphics} and all-day battery. Ships with {disk} SSD.",
        ),
    )
    attributes = {
        "brand": brand,
        "screen_in": screen,
        "cpu": cpu,
        "ram_gb": ram,
        "storage_gb": storage,
        "gpu": gpu,
        "os": _pick(rng, ("Windows 11 Home", "Windows 11 Pro", "Ubuntu 24.04 LTS", "ChromeOS")),
        "weight_kg": round(1.1 + (screen - 13) * 0.3 + (0.6 if gaming else 0), 2),
        "color": _pick(rng, ("silver", "graphite", "black", "blue")),
        "warranty_months": _pick(rng, (12, 24, 36)),
    }
    return Draft(name, description, _price(dollars), attributes)


PHONE_LINES = {
    "Lumora": ("Nova", "Nova Pro", "Nova Lite"),
    "Pellion": ("Arc", "Arc Ultra", "Arc Mini"),
    "Tessar": ("One", "One Max", "Flip"),
    "Quill": ("Q", "Q Plus", "Q Edge"),
}
PHONE_COLORS = ("Midnight", "Glacier", "Sage", "Coral", "Obsidian", "Sand", "Lavender")


def phone(rng: random.Random) -> Draft:
    """A smartphone in one storage size and colour."""
    brand = _pick(rng, tuple(PHONE_LINES))
    line = _pick(rng, PHONE_LINES[brand])
    generation = rng.randint(5, 12)
    storage = _pick(rng, (128, 256, 512, 1024))
    color = _pick(rng, PHONE_COLORS)
    tier = 1.6 if any(w in line for w in ("Pro", "Ultra", "Max", "Edge")) else 1.0
    tier = 0.55 if any(w in line for w in ("Lite", "Mini")) else tier
    dollars = (450 + generation * 25) * tier + storage * 0.35
    disk = "1TB" if storage == 1024 else f"{storage}GB"
    name = f"{brand} {line} {generation} 5G Smartphone, {disk} ({color})"
    camera = _pick(rng, (12, 48, 50, 108, 200))
    description = _pick(
        rng,
        (
            f"{brand} {line} {generation} with a {camera} MP main camera and {disk} of storage.",
            f"All-day battery, 5G and a bright OLED display. This one is {color} with {disk}.",
        ),
    )
    attributes = {
        "brand": brand,
        "storage_gb": storage,
        "color": color.lower(),
        "screen_in": _pick(rng, (6.1, 6.3, 6.5, 6.7, 6.9)),
        "camera_mp": camera,
        "battery_mah": _pick(rng, (3900, 4500, 5000, 5500)),
        "5g": True,
        "os": f"Android {rng.randint(13, 15)}" if brand != "Tessar" else "TessarOS",
        "unlocked": rng.random() < 0.7,
    }
    return Draft(name, description, _price(dollars), attributes)


HEADPHONE_TYPES = {  # kind: (model lines, base price, product noun)
    "over-ear": (("Studio", "Voyager", "Halo"), 120.0, "Over-Ear Headphones"),
    "on-ear": (("City", "Loop"), 70.0, "On-Ear Headphones"),
    "earbuds": (("Pods", "Buds", "Pebble"), 60.0, "Earbuds"),
    "in-ear": (("Monitor", "Stage"), 90.0, "In-Ear Monitors"),
}
AUDIO_BRANDS = ("Sonaro", "Aurelle", "Bassline", "Northtone", "Vanta Audio", "Echolite")


def headphones(rng: random.Random) -> Draft:
    """Headphones: type, wireless, noise cancelling, battery life."""
    kind = _pick(rng, tuple(HEADPHONE_TYPES))
    lines, base, noun = HEADPHONE_TYPES[kind]
    brand = _pick(rng, AUDIO_BRANDS)
    wireless = kind != "in-ear" or rng.random() < 0.3
    anc = wireless and rng.random() < 0.6
    model = f"{_pick(rng, lines)} {rng.randint(2, 9)}{'' if rng.random() < 0.6 else ' SE'}"
    color = _pick(rng, COLORS[:6])
    name = f"{brand} {model}{' ANC' if anc else ''} {'Wireless ' if wireless else ''}{noun}"
    name += f" ({color.title()})"
    battery = _pick(rng, (20, 30, 40, 60)) if kind in {"over-ear", "on-ear"} else rng.randint(6, 10)
    dollars = base * rng.uniform(0.7, 2.6) + (80 if anc else 0) + (30 if wireless else 0)
    description = _pick(
        rng,
        (
            f"{noun[0]}{noun[1:].lower()} with "
            f"{'active noise cancelling' if anc else 'a balanced, detailed sound'}"
            f"{f' and {battery} hours of battery' if wireless else ''}.",
            f"The {model} tuned by {brand}: clear mids, tight bass and a comfortable fit.",
        ),
    )
    attributes = {
        "brand": brand,
        "type": kind,
        "wireless": wireless,
        "noise_cancelling": anc,
        "battery_hours": battery if wireless else None,
        "driver_mm": _pick(rng, (6, 10, 11, 40, 50)),
        "color": color,
        "weight_g": rng.randint(4, 9) if kind in {"earbuds", "in-ear"} else rng.randint(180, 340),
    }
    return Draft(name, description, _price(dollars), attributes)


MONITOR_SPECS = (
    (24, "1920x1080", 140.0),
    (27, "2560x1440", 260.0),
    (27, "3840x2160", 380.0),
    (32, "3840x2160", 520.0),
    (34, "3440x1440", 480.0),
    (49, "5120x1440", 1050.0),
)
MONITOR_BRANDS = {
    "Viewtek": "VX",
    "Pixis": "P",
    "Lumora": "Display ",
    "Orbis": "OR-",
    "Clarion": "C",
}


def monitor(rng: random.Random) -> Draft:
    """A monitor: size, resolution, refresh rate and panel."""
    size, resolution, base = _pick(rng, MONITOR_SPECS)
    brand = _pick(rng, tuple(MONITOR_BRANDS))
    panel = _pick(rng, ("IPS", "IPS", "VA", "OLED"))
    refresh = _pick(rng, (60, 75, 144, 165, 240))
    model = f"{MONITOR_BRANDS[brand]}{size}{rng.randint(10, 99)}{_pick(rng, ('', 'Q', 'U', 'G'))}"
    dollars = base * (1.9 if panel == "OLED" else 1.0) + max(0, refresh - 75) * 1.2
    curved = size >= 34 and rng.random() < 0.8
    shape = " Curved" if curved else ""
    name = f'{brand} {model} {size}" {resolution} {refresh}Hz {panel}{shape} Monitor'
    description = _pick(
        rng,
        (
            f"A {size}-inch {panel} monitor at {resolution} and {refresh} Hz, with USB-C and HDMI.",
            f"{'Curved ' if curved else ''}{size}-inch {panel} panel for work and play. "
            f"Height-adjustable stand included.",
        ),
    )
    attributes = {
        "brand": brand,
        "screen_in": size,
        "resolution": resolution,
        "refresh_hz": refresh,
        "panel": panel,
        "curved": curved,
        "hdr": _pick(rng, ("none", "HDR400", "HDR600", "HDR1000")),
        "ports": _pick(rng, (["hdmi", "displayport"], ["hdmi", "displayport", "usb-c"])),
        "vesa_mount": True,
    }
    return Draft(name, description, _price(dollars), attributes)


KEYBOARD_LAYOUTS = {"full-size": 1.2, "tkl": 1.0, "75%": 1.1, "65%": 0.95, "60%": 0.85}
KEYBOARD_SWITCHES = ("linear red", "tactile brown", "clicky blue", "silent linear", "optical")
KEYBOARD_BRANDS = ("Keyforge", "Typewell", "Clacket", "Novaboard", "Axiom Keys")


def keyboard(rng: random.Random) -> Draft:
    """A keyboard: layout, switches, connectivity."""
    brand = _pick(rng, KEYBOARD_BRANDS)
    layout = _pick(rng, tuple(KEYBOARD_LAYOUTS))
    switches = _pick(rng, KEYBOARD_SWITCHES)
    wireless = rng.random() < 0.55
    model = f"{_pick(rng, ('K', 'MK', 'Pro ', 'Air '))}{rng.randint(1, 9)}{rng.randint(0, 9)}"
    hot_swap = rng.random() < 0.5
    dollars = 55 * KEYBOARD_LAYOUTS[layout] * rng.uniform(0.8, 3.2) + (25 if wireless else 0)
    name = f"{brand} {model} {layout.upper() if layout == 'tkl' else layout.title()} Keyboard"
    name += f" ({switches.title()}{', Wireless' if wireless else ''})"
    description = _pick(
        rng,
        (
            f"A {layout} mechanical keyboard with {switches} switches"
            f"{' and hot-swappable sockets' if hot_swap else ''}.",
            f"PBT keycaps, {switches} switches and "
            f"{'Bluetooth plus 2.4 GHz' if wireless else 'a detachable USB-C cable'}.",
        ),
    )
    attributes = {
        "brand": brand,
        "layout": layout,
        "switches": switches,
        "connectivity": "bluetooth+2.4ghz" if wireless else "usb-c",
        "hot_swappable": hot_swap,
        "backlight": _pick(rng, ("rgb", "white", "none")),
        "keycaps": _pick(rng, ("PBT", "PBT", "ABS")),
        "os_layout": _pick(rng, ("ANSI", "ANSI", "ISO")),
    }
    return Draft(name, description, _price(dollars), attributes)


CAMERA_TYPES = {
    "mirrorless": (("full-frame", 1900.0), ("aps-c", 900.0), ("micro four thirds", 800.0)),
    "dslr": (("full-frame", 1500.0), ("aps-c", 600.0)),
    "compact": (("1-inch", 700.0), ("aps-c", 1100.0)),
    "action": (("1/1.9-inch", 330.0),),
}
CAMERA_BRANDS = ("Optika", "Fennick", "Lumen", "Saros", "Kairo")


def camera(rng: random.Random) -> Draft:
    """A camera body (or kit): sensor, resolution, video."""
    brand = _pick(rng, CAMERA_BRANDS)
    kind = _pick(rng, tuple(CAMERA_TYPES))
    sensor, base = _pick(rng, CAMERA_TYPES[kind])
    megapixels = _pick(rng, (20, 24, 26, 33, 45, 61)) if kind != "action" else 27
    kit = kind in {"mirrorless", "dslr"} and rng.random() < 0.4
    model = (
        f"{_pick(rng, ('Z', 'X', 'A', 'R'))}{rng.randint(1, 9)}{_pick(rng, ('', ' II', ' III'))}"
    )
    dollars = base * rng.uniform(0.85, 1.4) + megapixels * 8 + (300 if kit else 0)
    suffix = (
        " Kit with 24-70mm Lens" if kit else (" Body" if kind in {"mirrorless", "dslr"} else "")
    )
    label = {"dslr": "DSLR", "action": "Action"}.get(kind, kind.title())
    name = f"{brand} {model} {megapixels}MP {label} Camera{suffix}"
    video = _pick(rng, ("4K30", "4K60", "6K30", "8K30"))
    sensor_text = sensor.replace("aps-c", "APS-C")
    description = _pick(
        rng,
        (
            f"A {megapixels} MP {sensor_text} {label.lower()} camera that records {video} video.",
            f"{brand} {model}: {sensor_text} sensor, fast autofocus and {video} video"
            f"{' with a 24-70mm zoom in the box' if kit else ''}.",
        ),
    )
    attributes = {
        "brand": brand,
        "type": kind,
        "sensor": sensor,
        "megapixels": megapixels,
        "video": video,
        "stabilisation": rng.random() < 0.7,
        "weather_sealed": rng.random() < 0.4,
        "kit_lens": "24-70mm" if kit else None,
    }
    return Draft(name, description, _price(dollars), attributes)


# --- home --------------------------------------------------------------------------------------

KITCHEN_ITEMS: dict[str, tuple[float, tuple[str, ...], tuple[float, ...]]] = {
    # kind: (base price, model lines, capacities in litres; none for tools)
    "blender": (79.0, ("Vortex", "PowerBlend", "Smoothie Pro"), (1.5, 2.0)),
    "air fryer": (99.0, ("Crisp", "AirChef", "Duo Basket"), (3.5, 5.5, 8.0)),
    "stand mixer": (249.0, ("Artisan", "BakeMaster", "Classic"), (4.3, 4.8, 6.6)),
    "chef's knife": (59.0, ("Santoku 18cm", "Classic 20cm", "Gyuto 21cm"), ()),
    "cast iron skillet": (39.0, ("10-Inch", "12-Inch", "Deep 11-Inch"), ()),
    "cookware set": (199.0, ("5-Piece", "10-Piece", "Tri-Ply 7-Piece"), ()),
    "toaster": (49.0, ("2-Slice", "4-Slice", "Long Slot"), ()),
    "electric kettle": (45.0, ("Gooseneck", "Glass", "Temp Control"), (0.9, 1.2, 1.7)),
    "food processor": (129.0, ("Prep", "Prep Plus", "Mini Chopper"), (1.0, 2.1, 3.3)),
    "cutting board": (29.0, ("Walnut Large", "Maple Medium", "Bamboo Set"), ()),
}
KITCHEN_TOOLS = {  # kind: the materials it comes in
    "chef's knife": ("stainless steel", "carbon steel", "damascus steel"),
    "cast iron skillet": ("cast iron", "enamelled cast iron"),
    "cookware set": ("stainless steel", "hard-anodised aluminium", "copper core"),
    "cutting board": ("walnut", "maple", "bamboo"),
}
KITCHEN_BRANDS = ("Hearthwell", "Copperline", "Brio Home", "Oakhaven", "Culina")


def kitchen(rng: random.Random) -> Draft:
    """A kitchen appliance or tool; attributes depend on the type."""
    kind = _pick(rng, tuple(KITCHEN_ITEMS))
    base, lines, capacities = KITCHEN_ITEMS[kind]
    brand, line = _pick(rng, KITCHEN_BRANDS), _pick(rng, lines)
    color = _pick(rng, ("black", "white", "stainless", "sage", "cream", "red"))
    electric = kind not in KITCHEN_TOOLS
    name = f"{brand} {line} {_cap(kind)}" + (f" ({color.title()})" if electric else "")
    attributes: dict[str, Any] = {"brand": brand, "type": kind}
    if electric:
        attributes |= {"wattage": _pick(rng, (600, 900, 1200, 1500, 1800)), "color": color}
    else:
        attributes["material"] = _pick(rng, KITCHEN_TOOLS[kind])
    if capacities:
        attributes["capacity_l"] = _pick(rng, capacities)
        name = name.replace(f" {_cap(kind)}", f" {attributes['capacity_l']:g}L {_cap(kind)}")
    attributes["dishwasher_safe"] = rng.random() < 0.5
    description = _pick(
        rng,
        (
            f"A dependable {kind} from {brand}, made for everyday cooking.",
            f"The {brand} {line} {kind}: easy to clean and built to last. "
            f"Backed by a {_pick(rng, (1, 2, 5))}-year warranty.",
        ),
    )
    return Draft(name, description, _price(base * rng.uniform(0.7, 2.2)), attributes)


COFFEE_ORIGINS = (
    ("Ethiopia", "Yirgacheffe"),
    ("Ethiopia", "Guji"),
    ("Colombia", "Huila"),
    ("Kenya", "Nyeri"),
    ("Guatemala", "Antigua"),
    ("Brazil", "Cerrado"),
    ("Costa Rica", "Tarrazu"),
    ("Rwanda", "Nyamasheke"),
    ("Peru", "Cajamarca"),
    ("Indonesia", "Sumatra"),
)
COFFEE_NOTES = (
    "blueberry",
    "jasmine",
    "milk chocolate",
    "caramel",
    "citrus",
    "stone fruit",
    "brown sugar",
    "hazelnut",
    "black tea",
    "red apple",
    "cocoa",
    "honey",
)
COFFEE_GEAR = {
    "burr grinder": 149.0,
    "espresso machine": 549.0,
    "pour-over dripper": 29.0,
    "french press": 39.0,
    "gooseneck kettle": 69.0,
    "coffee scale": 49.0,
}
ROASTERS = ("Ridgeback Roasters", "Small Batch Coffee", "Ember & Bean", "Northbound Coffee")


def coffee(rng: random.Random) -> Draft:
    """Coffee beans (origin, roast, notes) or brewing gear."""
    return coffee_beans(rng) if rng.random() < 0.65 else coffee_gear(rng)


def coffee_beans(rng: random.Random) -> Draft:
    """A bag of single-origin coffee."""
    country, region = _pick(rng, COFFEE_ORIGINS)
    roaster = _pick(rng, ROASTERS)
    roast = _pick(rng, ("light", "medium", "medium-dark", "dark"))
    process = _pick(rng, ("washed", "natural", "honey"))
    weight = _pick(rng, (250, 340, 500, 1000))
    grind = _pick(rng, ("whole bean", "whole bean", "espresso", "filter"))
    notes = rng.sample(COFFEE_NOTES, 3)
    name = f"{roaster} {country} {region} {process.title()} {roast.title()} Roast, {weight}g"
    if grind != "whole bean":
        name += f" ({grind.title()} Grind)"
    description = (
        f"Single-origin {country} coffee with notes of {notes[0]}, {notes[1]} and {notes[2]}."
    )
    attributes = {
        "kind": "beans",
        "roaster": roaster,
        "origin": country,
        "region": region,
        "roast": roast,
        "process": process,
        "weight_g": weight,
        "grind": grind,
        "tasting_notes": notes,
    }
    return Draft(name, description, _price(weight / 250 * rng.uniform(13, 24)), attributes)


def coffee_gear(rng: random.Random) -> Draft:
    """A grinder, espresso machine, dripper or similar."""
    kind = _pick(rng, tuple(COFFEE_GEAR))
    brand = _pick(rng, ("Baristo", "Crema Lab", "Pourwell", "Hearthwell"))
    model = f"{_pick(rng, ('Mini', 'Pro', 'Classic', 'Duo', 'One'))} {rng.randint(1, 5)}"
    color = _pick(rng, ("black", "white", "stainless", "copper"))
    name = f"{brand} {model} {_cap(kind)} ({color.title()})"
    description = _pick(
        rng,
        (
            f"A {kind} for better coffee at home, from {brand}.",
            f"The {brand} {model} {kind}: precise, quiet and easy to clean.",
        ),
    )
    attributes: dict[str, Any] = {"kind": "equipment", "brand": brand, "type": kind}
    attributes["color"] = color
    if kind == "burr grinder":
        attributes["wattage"] = _pick(rng, (150, 250))
    elif kind == "espresso machine":
        attributes["wattage"] = _pick(rng, (1350, 1600))
    return Draft(name, description, _price(COFFEE_GEAR[kind] * rng.uniform(0.7, 2.5)), attributes)


# --- outdoor and sport -------------------------------------------------------------------------

OUTDOOR_BRANDS = ("Summitcraft", "Trailhaven", "Northpass", "Cairn & Co", "Wildmere")


def outdoor(rng: random.Random) -> Draft:
    """Camping and hiking gear; attributes depend on the type."""
    maker = _pick(rng, (_tent, _sleeping_bag, _backpack, _headlamp, _water_filter))
    brand = _pick(rng, OUTDOOR_BRANDS)
    label, dollars, attributes, sentence = maker(rng)
    attributes = {"brand": brand} | attributes
    return Draft(f"{brand} {label}", sentence, _price(dollars), attributes)


OutdoorPart = tuple[str, float, dict[str, Any], str]


def _tent(rng: random.Random) -> OutdoorPart:
    """A tent: capacity, seasons, weight."""
    people, season = _pick(rng, (1, 2, 2, 3, 4, 6)), _pick(rng, (3, 3, 4))
    weight = round(0.9 + people * 0.55 + (0.8 if season == 4 else 0), 2)
    line = _pick(rng, ("Ridge", "Basecamp", "Ultralight", "Alpine", "Meadow"))
    label = f"{line} {people}P {season}-Season Tent"
    sentence = f"A {season}-season tent for {people}, weighing {weight} kg packed."
    attrs = {"type": "tent", "capacity_people": people, "seasons": season, "weight_kg": weight}
    dollars = (90 + people * 60 + (200 if season == 4 else 0)) * rng.uniform(0.8, 1.5)
    return label, dollars, attrs, sentence


def _sleeping_bag(rng: random.Random) -> OutdoorPart:
    """A sleeping bag: temperature rating and fill."""
    rating, fill = _pick(rng, (-18, -9, -4, 0, 4, 10)), _pick(rng, ("down", "synthetic"))
    label = f"{_pick(rng, ('Ember', 'Cocoon', 'Drift'))} {rating}°C {_cap(fill)} Sleeping Bag"
    sentence = f"A {fill} mummy bag rated to {rating}°C; packs into its own stuff sack."
    attrs = {"type": "sleeping bag", "temp_rating_c": rating, "fill": fill}
    dollars = ((320 if fill == "down" else 140) - rating * 6) * rng.uniform(0.8, 1.2)
    return label, dollars, attrs, sentence


def _backpack(rng: random.Random) -> OutdoorPart:
    """A backpack: volume and fit."""
    volume = _pick(rng, (18, 24, 30, 40, 55, 65, 75))
    label = f"{_pick(rng, ('Switchback', 'Traverse', 'Scout', 'Ascent'))} {volume}L Backpack"
    label += f" ({_pick(rng, ('S/M', 'M/L'))})"
    sentence = f"A {volume}-litre pack with an adjustable harness and a hydration sleeve."
    attrs = {"type": "backpack", "volume_l": volume, "color": _pick(rng, COLORS)}
    return label, 45 + volume * 3 * rng.uniform(0.8, 1.5), attrs, sentence


def _headlamp(rng: random.Random) -> OutdoorPart:
    """A headlamp: brightness and battery."""
    lumens = _pick(rng, (200, 350, 400, 600, 900, 1200))
    battery = _pick(rng, ("rechargeable", "AAA", "hybrid"))
    label = f"{_pick(rng, ('Beacon', 'Lumen', 'Night Owl'))} {lumens} Headlamp ({_cap(battery)})"
    sentence = f"{lumens} lumens with a red-light mode and {battery} power."
    attrs = {"type": "headlamp", "lumens": lumens, "battery": battery, "ipx_rating": 4}
    return label, 20 + lumens * 0.06 * rng.uniform(0.8, 1.4), attrs, sentence


def _water_filter(rng: random.Random) -> OutdoorPart:
    """A water filter: style and capacity."""
    style = _pick(rng, ("squeeze", "gravity", "pump", "bottle"))
    litres = _pick(rng, (1, 2, 4, 6))
    label = f"{_pick(rng, ('ClearFlow', 'Purewell', 'Streamline'))} {_cap(style)} Water Filter"
    label += f" {litres}L"
    sentence = f"A {style} filter that removes 99.9999% of bacteria; {litres}-litre capacity."
    attrs = {"type": "water filter", "style": style, "capacity_l": litres, "filter_micron": 0.1}
    return label, 25 + litres * 8 * rng.uniform(0.9, 2.0), attrs, sentence


SHOE_MODELS = {
    "Stridewell": ("Tempo", "Cloudline", "Trailblazer"),
    "Fleetfoot": ("Pace", "Glide Max", "Ridge Trail"),
    "Kinetix": ("Apex", "Volt", "Terra"),
    "Paceforge": ("Daily", "Racer Carbon", "Fell"),
}


def running_shoe(rng: random.Random) -> Draft:
    """One size and colour of a running shoe."""
    brand = _pick(rng, tuple(SHOE_MODELS))
    model = f"{_pick(rng, SHOE_MODELS[brand])} {rng.randint(2, 14)}"
    gender = _pick(rng, ("men", "women", "unisex"))
    low, high = {"men": (7, 14), "women": (5, 12), "unisex": (5, 13)}[gender]
    size = _pick(rng, [s / 2 for s in range(low * 2, high * 2 + 1)])  # US half sizes
    color = "/".join(rng.sample(("black", "white", "blue", "orange", "volt", "grey", "red"), 2))
    trail = any(w in model for w in ("Trail", "Terra", "Fell"))
    carbon = "Carbon" in model
    width = _pick(rng, ("standard", "standard", "wide"))
    who = {"men": "Men's", "women": "Women's", "unisex": "Unisex"}[gender]
    name = f"{brand} {model} {who} Running Shoe - {color.title()} - US {size:g}"
    if width == "wide":
        name += " Wide"
    surface = "trail" if trail else "road"
    description = _pick(
        rng,
        (
            f"A cushioned {surface} running shoe with a {_pick(rng, (4, 6, 8, 10))} mm drop.",
            f"{model} is {'a carbon-plated racer' if carbon else 'a daily trainer'} for {surface}.",
        ),
    )
    attributes = {
        "brand": brand,
        "gender": gender,
        "size": size,
        "size_system": "US",
        "width": width,
        "color": color,
        "surface": surface,
        "drop_mm": _pick(rng, (4, 6, 8, 10)),
        "weight_g": rng.randint(190, 330),
        "carbon_plate": carbon,
    }
    return Draft(
        name, description, _price((210 if carbon else 120) * rng.uniform(0.8, 1.3)), attributes
    )


# --- books and toys ----------------------------------------------------------------------------

FIRST_NAMES = (
    "Ada",
    "Miles",
    "Noor",
    "Elena",
    "Tomas",
    "Priya",
    "Jonah",
    "Mei",
    "Rafael",
    "Ines",
    "Kofi",
    "Hanna",
    "Oren",
    "Lucia",
    "Declan",
    "Sana",
    "Viktor",
    "Amara",
)
LAST_NAMES = (
    "Whitlock",
    "Okafor",
    "Lindqvist",
    "Marchetti",
    "Tanaka",
    "Haddad",
    "Brennan",
    "Castellanos",
    "Novak",
    "Achebe",
    "Fairbanks",
    "Iyer",
    "Moreau",
    "Sato",
)
BOOK_GENRES = {  # genre: (adjectives, nouns, blurbs)
    "fiction": (
        ("Last", "Quiet", "Salt", "Winter", "Lost", "Paper", "Burning"),
        ("Garden", "River", "House", "Summer", "Daughters", "Orchard", "Lighthouse"),
        ("A novel about family and forgiveness.", "A sweeping story of three generations."),
    ),
    "mystery": (
        ("Silent", "Vanishing", "Crooked", "Midnight", "Drowned", "Seventh"),
        ("Harbour", "Key", "Witness", "Alibi", "Station", "Manor"),
        ("A twisting mystery in a town with a secret.", "A detective races a storm."),
    ),
    "science": (
        ("Hidden", "Invisible", "Restless", "Elegant", "Curious"),
        ("Atoms", "Stars", "Cells", "Universe", "Code", "Brain", "Ocean"),
        ("An accessible tour of how things really work.", "Big ideas, plainly told."),
    ),
    "business": (
        ("Small", "Lean", "Patient", "Profitable", "Honest"),
        ("Company", "Playbook", "Pricing", "Habits", "Growth", "Founder"),
        ("A practical guide to building a company that lasts.", "Lessons from 40 founders."),
    ),
    "cookbook": (
        ("Simple", "Weeknight", "Slow", "Seasonal", "Everyday"),
        ("Kitchen", "Bread", "Vegetables", "Suppers", "Baking", "Noodles"),
        ("Recipes for cooking for the people you love.", "Over 100 dependable recipes."),
    ),
    "children": (
        ("Little", "Brave", "Sleepy", "Tiny", "Grumpy"),
        ("Fox", "Moon", "Dragon", "Bear", "Cloud", "Tugboat"),
        ("A picture book about being brave.", "A bedtime story to read aloud."),
    ),
}
BOOK_TITLES = ("The {adj} {noun}", "{adj} {noun}", "{noun} and {other}")
PUBLISHERS = ("Harrow & Finch", "Bluestone Press", "Meridian Books", "Lantern House")


def _isbn13(rng: random.Random) -> str:
    """A random ISBN-13 with a valid check digit."""
    digits = [9, 7, 8] + [rng.randint(0, 9) for _ in range(9)]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def book(rng: random.Random) -> Draft:
    """A book: title, author, pages, ISBN, format."""
    genre = _pick(rng, tuple(BOOK_GENRES))
    adjectives, nouns, blurbs = BOOK_GENRES[genre]
    noun, other = rng.sample(nouns, 2)
    title = _pick(rng, BOOK_TITLES).format(adj=_pick(rng, adjectives), noun=noun, other=other)
    author = f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"
    book_format = _pick(rng, ("paperback", "paperback", "hardcover"))
    pages = rng.randint(32, 60) if genre == "children" else rng.randint(180, 640)
    dollars = (9 if book_format == "paperback" else 18) + pages * 0.02 * rng.uniform(0.8, 1.4)
    description = f"{_pick(rng, blurbs)} By {author}."
    attributes = {
        "author": author,
        "isbn": _isbn13(rng),
        "pages": pages,
        "format": book_format,
        "genre": genre,
        "publisher": _pick(rng, PUBLISHERS),
        "year": rng.randint(1995, 2024),
        "language": "en",
    }
    return Draft(f"{title} ({book_format.title()})", description, _price(dollars), attributes)


TOY_TYPES: dict[str, tuple[float, tuple[str, ...], tuple[int, ...]]] = {
    # kind: (base price, themes, minimum ages)
    "building set": (29.0, ("Space Station", "Harbour Town", "Dino Lab", "Race Garage"), (6, 8, 9)),
    "jigsaw puzzle": (14.0, ("Mountain Lake", "Night Market", "World Map", "Coral Reef"), (8, 12)),
    "plush": (17.0, ("Sleepy Sloth", "Giant Panda", "Red Fox", "Octopus"), (0, 3)),
    "board game": (34.0, ("Castle Quest", "Trade Winds", "Rocket Race", "Word Duel"), (6, 8, 10)),
    "RC car": (59.0, ("Desert Buggy", "Rock Crawler", "Drift Racer"), (8, 10, 14)),
    "STEM kit": (39.0, ("Robot Arm", "Crystal Growing", "Solar Rover", "Circuit Lab"), (8, 10)),
}
PRICE_PER_PIECE = {"building set": 0.08, "jigsaw puzzle": 0.008}
TOY_BRANDS = ("Brightblock", "Playwise", "Tumble & Co", "Little Atlas", "Zoomworks")


def toy(rng: random.Random) -> Draft:
    """A toy or game; attributes depend on the type."""
    kind = _pick(rng, tuple(TOY_TYPES))
    base, themes, ages = TOY_TYPES[kind]
    brand, theme, age = _pick(rng, TOY_BRANDS), _pick(rng, themes), _pick(rng, ages)
    attributes: dict[str, Any] = {"brand": brand, "type": kind, "age_min": age}
    label = f"{brand} {theme} {_cap(kind)}"
    if kind in {"building set", "jigsaw puzzle"}:
        puzzle = kind == "jigsaw puzzle"
        pieces = _pick(rng, (250, 500, 750, 1000, 1500)) if puzzle else rng.randint(80, 2400)
        attributes["pieces"] = pieces
        label += f", {pieces} Pieces"
        base += pieces * PRICE_PER_PIECE[kind]
    elif kind == "board game":
        attributes["players"] = f"2-{_pick(rng, (4, 5, 6))}"
        attributes["play_time_min"] = _pick(rng, (20, 45, 90))
    elif kind == "plush":
        attributes["height_cm"] = _pick(rng, (20, 30, 45, 90))
        label += f" ({attributes['height_cm']} cm)"
    ages_text = "all ages" if age == 0 else f"ages {age}+"
    description = f"A {kind} for {ages_text} from {brand}. " + _pick(
        rng, ("Makes a great gift.", "Built for hours of play.", "Screen-free fun for the family.")
    )
    return Draft(label, description, _price(base * rng.uniform(0.7, 1.8)), attributes)


# --- assembly ----------------------------------------------------------------------------------

CATEGORIES: tuple[tuple[str, str, int, Maker], ...] = (
    ("laptops", "LAP", 220, laptop),
    ("phones", "PHN", 200, phone),
    ("headphones", "HPH", 260, headphones),
    ("monitors", "MON", 200, monitor),
    ("keyboards", "KBD", 220, keyboard),
    ("cameras", "CAM", 160, camera),
    ("kitchen", "KIT", 260, kitchen),
    ("coffee", "COF", 260, coffee),
    ("outdoor", "OUT", 300, outdoor),
    ("running-shoes", "RUN", 300, running_shoe),
    ("books", "BOK", 320, book),
    ("toys", "TOY", 300, toy),
)


# Hand-written listings with accented names (and one unaccented name a shopper may type with
# accents), appended after the generated ones of their category: (category, name, description,
# price in cents, attributes, stock). Invented brands only.
EXTRAS: tuple[tuple[str, str, str, int, dict[str, Any], int], ...] = (
    (
        "coffee",
        "Café Lumière Colombia Huila Washed Medium Roast, 340g",
        "Single-origin Colombia coffee with notes of caramel, red apple and cocoa.",
        1799,
        {
            "kind": "beans",
            "roaster": "Café Lumière",
            "origin": "Colombia",
            "region": "Huila",
            "roast": "medium",
            "process": "washed",
            "weight_g": 340,
            "grind": "whole bean",
            "tasting_notes": ["caramel", "red apple", "cocoa"],
        },
        84,
    ),
    (
        "coffee",
        "Señor Tostado Guatemala Antigua Natural Dark Roast, 500g (Espresso Grind)",
        "Single-origin Guatemala coffee with notes of cocoa, brown sugar and hazelnut.",
        2199,
        {
            "kind": "beans",
            "roaster": "Señor Tostado",
            "origin": "Guatemala",
            "region": "Antigua",
            "roast": "dark",
            "process": "natural",
            "weight_g": 500,
            "grind": "espresso",
            "tasting_notes": ["cocoa", "brown sugar", "hazelnut"],
        },
        37,
    ),
    (
        "coffee",
        "Crema Lab Crème 3 Espresso Machine (Copper)",
        "The Crema Lab Crème 3 espresso machine: precise, quiet and easy to clean.",
        89999,
        {"kind": "equipment", "brand": "Crema Lab", "type": "espresso machine", "wattage": 1600},
        6,
    ),
    (
        "kitchen",
        "Müller & Söhne Classic 20cm Chef's Knife",
        "A hand-forged chef's knife from Müller & Söhne, made for everyday cooking.",
        12999,
        {"brand": "Müller & Söhne", "type": "chef's knife", "material": "carbon steel"},
        22,
    ),
    (
        "kitchen",
        "Culina Brûlée Pro Kitchen Torch (Black)",
        "A refillable butane torch for crème brûlée, meringue and searing.",
        3499,
        {"brand": "Culina", "type": "kitchen torch", "color": "black"},
        140,
    ),
    (
        "kitchen",
        "Hearthwell Crème Artisan 4.8L Stand Mixer (Cream)",
        "A dependable stand mixer from Hearthwell, made for everyday baking.",
        37999,
        {
            "brand": "Hearthwell",
            "type": "stand mixer",
            "wattage": 900,
            "color": "cream",
            "capacity_l": 4.8,
        },
        0,
    ),
    (
        "headphones",
        "Öresund Audio Fjäll 3 ANC Wireless Over-Ear Headphones (Black)",
        "Over-ear headphones with active noise cancelling and 40 hours of battery.",
        27999,
        {
            "brand": "Öresund Audio",
            "type": "over-ear",
            "wireless": True,
            "noise_cancelling": True,
            "battery_hours": 40,
            "driver_mm": 40,
            "color": "black",
            "weight_g": 254,
        },
        58,
    ),
    (
        "headphones",
        "Klangmüller Bühne 5 In-Ear Monitors (Silver)",
        "In-ear monitors with a balanced, detailed sound for the stage.",
        18999,
        {
            "brand": "Klangmüller",
            "type": "in-ear",
            "wireless": False,
            "noise_cancelling": False,
            "driver_mm": 10,
            "color": "silver",
            "weight_g": 6,
        },
        12,
    ),
    (
        "running-shoes",
        "Ñandú Carrera 3 Men's Running Shoe - Black/Red - US 10",
        "A cushioned road running shoe with an 8 mm drop.",
        13999,
        {
            "brand": "Ñandú",
            "gender": "men",
            "size": 10.0,
            "size_system": "US",
            "width": "standard",
            "color": "black/red",
            "surface": "road",
            "drop_mm": 8,
            "weight_g": 262,
            "carbon_plate": False,
        },
        31,
    ),
    (
        "outdoor",
        "Bergwärts Höhenweg 2P 4-Season Tent",
        "A 4-season tent for 2, weighing 2.8 kg packed.",
        54999,
        {
            "brand": "Bergwärts",
            "type": "tent",
            "capacity_people": 2,
            "seasons": 4,
            "weight_kg": 2.8,
        },
        9,
    ),
    (
        "books",
        "Crème Brûlée and Other Custards (Hardcover)",
        "Over 100 dependable recipes. By Amélie Duchêne.",
        2899,
        {
            "author": "Amélie Duchêne",
            "isbn": "9781917352048",
            "pages": 240,
            "format": "hardcover",
            "genre": "cookbook",
            "publisher": "Lantern House",
            "year": 2021,
            "language": "en",
        },
        45,
    ),
    (
        "books",
        "The Café on Rue Ménard (Paperback)",
        "A sweeping story of three generations. By José Ibáñez.",
        1599,
        {
            "author": "José Ibáñez",
            "isbn": "9781917352055",
            "pages": 384,
            "format": "paperback",
            "genre": "fiction",
            "publisher": "Harrow & Finch",
            "year": 2019,
            "language": "en",
        },
        63,
    ),
    (
        "books",
        "Señor Bear Can't Sleep (Paperback)",
        "A bedtime story to read aloud. By Lucia Marchetti.",
        899,
        {
            "author": "Lucia Marchetti",
            "isbn": "9781917352062",
            "pages": 40,
            "format": "paperback",
            "genre": "children",
            "publisher": "Bluestone Press",
            "year": 2023,
            "language": "en",
        },
        120,
    ),
    (
        "books",
        "Creme Fraiche Weeknights (Paperback)",  # written without accents, as many shops do
        "Recipes for cooking for the people you love. By Nora Lindqvist.",
        1899,
        {
            "author": "Nora Lindqvist",
            "isbn": "9781917352079",
            "pages": 272,
            "format": "paperback",
            "genre": "cookbook",
            "publisher": "Meridian Books",
            "year": 2022,
            "language": "en",
        },
        27,
    ),
    (
        "toys",
        "Jouéclair Mondémon Trading Card Game Starter Deck",
        "A card game for ages 8+ from Jouéclair. Makes a great gift.",
        1499,
        {"brand": "Jouéclair", "type": "card game", "age_min": 8, "players": "2"},
        210,
    ),
)


def _gtin13(sku: str) -> str:
    """A GTIN-13 derived from the SKU alone (stable whatever else changes), in the GS1
    restricted-circulation range (prefix 2), with a valid check digit."""
    rng = random.Random(f"gtin:{sku}")
    digits = [2, rng.randint(0, 9)] + [rng.randint(0, 9) for _ in range(10)]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def _with_gtin(product: ProductIn) -> ProductIn:
    """Branded products carry a GTIN; books (ISBN) and roasters' own bags of beans do not."""
    if product.category == "books" or product.attributes.get("kind") == "beans":
        return product
    return product.model_copy(
        update={"attributes": product.attributes | {"gtin": _gtin13(product.sku)}}
    )


def _extras(category: str, prefix: str, first: int) -> list[ProductIn]:
    """The hand-written listings of `category`, numbered from `first`."""
    rows = [extra for extra in EXTRAS if extra[0] == category]
    return [
        ProductIn(
            sku=f"{prefix}-{number:05d}",
            name=name,
            description=description,
            category=category,
            price_cents=price_cents,
            currency="usd",
            attributes=attributes,
            stock=stock,
        )
        for number, (_, name, description, price_cents, attributes, stock) in enumerate(
            rows, start=first
        )
    ]


def _stock(rng: random.Random) -> int:
    """Units on hand: about one product in twelve is out of stock."""
    roll = rng.random()
    if roll < 0.08:
        return 0
    if roll < 0.25:
        return rng.randint(1, 9)
    return rng.randint(10, 400) if roll < 0.95 else rng.randint(500, 5000)


def _unique(maker: Maker, rng: random.Random, seen: set[str]) -> Draft:
    """A draft whose name has not been used in this category yet."""
    for _ in range(1000):
        draft = maker(rng)
        if draft.name not in seen:
            seen.add(draft.name)
            return draft
    raise RuntimeError(f"{maker.__name__}: not enough distinct names")


def _category(
    rng: random.Random, category: str, prefix: str, count: int, maker: Maker
) -> list[ProductIn]:
    """`count` products of one category, SKUs `PREFIX-00001` upwards."""
    seen: set[str] = set()
    products = []
    for number in range(1, count + 1):
        draft = _unique(maker, rng, seen)
        attributes = {k: v for k, v in draft.attributes.items() if v is not None}
        products.append(
            ProductIn(
                sku=f"{prefix}-{number:05d}",
                name=draft.name,
                description=draft.description,
                category=category,
                price_cents=draft.price_cents,
                currency="usd",
                attributes=attributes,
                stock=_stock(rng),
            )
        )
    return products


def sample_products() -> list[ProductIn]:
    """The sample catalog: the same ~3,000 products on every call."""
    rng = random.Random(SEED)
    products: list[ProductIn] = []
    for category, prefix, count, maker in CATEGORIES:
        products += _category(rng, category, prefix, count, maker)
        products += _extras(category, prefix, count + 1)
    products = [_with_gtin(p) for p in products]
    codes = [p.attributes.get("gtin") or p.attributes.get("isbn") for p in products]
    codes = [code for code in codes if code]
    if len(set(codes)) != len(codes):  # pragma: no cover - a seed change could collide
        raise RuntimeError("sample catalog: duplicate GTIN/ISBN")
    return products


def to_jsonl(products: Iterable[ProductIn]) -> str:
    """The products as JSON Lines, one compact object per line."""
    return "".join(
        json.dumps(p.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")) + "\n"
        for p in products
    )


def write_sample(path: Path) -> int:
    """Write the sample catalog as JSON Lines (gzip if the name ends in .gz); returns the count."""
    products = sample_products()
    data = to_jsonl(products).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)  # fixed header: rebuilds are identical
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(products)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.catalog.sample [PATH]` (default: the packaged sample file)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(a in {"-h", "--help"} for a in args):
        print("usage: python -m app.catalog.sample [PATH.jsonl[.gz]]", file=sys.stderr)
        return 2
    path = Path(args[0]) if args else SAMPLE_CATALOG
    count = write_sample(path)
    print(f"wrote {count} products to {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
