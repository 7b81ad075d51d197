"""A function module's start-up: the collector paused while it imports and builds its app.

Importing a function's module creates some 200,000 objects that live as long as the process
(modules, classes, routes, schemas, tables) and almost no garbage (~650 objects in a full
collection right after `import api.index`). With the collector on, those allocations trigger
~300 collections during the import, two or three of them full ones over everything created so
far: 110–180 ms of a 1.1–1.4 s import (bench/RESULTS.md, cold start). Paused, the objects are then
frozen (`gc.freeze()`: moved to the permanent generation, so later collections, during requests,
no longer walk them) and the collector runs as usual from then on.

What this gives up: the few cycles that became garbage during the import stay in the permanent
generation for the life of the process (kilobytes), and objects created by the start-up that
later become cyclic garbage are never collected (module-level state is not meant to be dropped).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector around a function's start-up, then freeze what it built.

    The collector is re-enabled even if the start-up raises (and left off if it was already off
    when this began)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
