"""The cyclic garbage collector in a long-running service process.

A process of the service holds about 170,000 objects once it has started (modules, the app
and its routes, SQLAlchemy's and Litestar's tables): a full collection walks them all, about
80 ms on this machine. A request that handles a batch of items keeps tens of thousands of
objects alive while it runs; they survive the young collections, are promoted, and trigger
full collections every few requests. Profiled on ingest (`bench/`), the collector took about
a third of the API's CPU per item.

So a server or worker process, once started, moves everything it built so far into the
collector's permanent generation (`gc.freeze`: never walked again, still freed by reference
counting) and collects young objects every 10,000 allocations instead of 700. Tests and
library users who build apps over and over do not call this: objects frozen there would
never be collected.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_heap"]

YOUNG_THRESHOLD = 10_000
"""Net allocations of tracked objects between two collections of the youngest generation."""


def settle_heap() -> None:
    """Freeze what the process built while starting, and collect young objects less often.

    Call once, when the process has finished starting and before it serves."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
