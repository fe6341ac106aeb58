"""Request and response bodies of the routing-config endpoints."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "ConfigChangeOut",
    "ExpertLoadOut",
    "MovedItemOut",
    "MovedOut",
    "PreviewItemsOut",
    "PreviewOut",
    "RerouteOut",
    "RoutingConfigIn",
    "RoutingConfigOut",
    "RoutingConfigPutOut",
    "TierCountsOut",
]


class RoutingConfigIn(msgspec.Struct, forbid_unknown_fields=True):
    config: dict[str, Any]
    """A full routing config (the shape of config/routing.yaml), or part of one: what it leaves
    out is taken from the version in force."""


class RerouteOut(msgspec.Struct):
    version: int
    """The config version the items are being re-routed to."""
    state: str
    """queued, running, done, or superseded (a newer version took over)."""
    done: int
    """Items examined so far."""
    total: int
    """Items that were free to move (routed, no labels, no live lease) when the run started."""
    moved: int
    """Items that changed tier."""


class RoutingConfigOut(msgspec.Struct):
    version: int
    config: dict[str, Any]
    updated_by: str | None
    """Id of the key that made this version."""
    updated_at: str
    reroute: RerouteOut | None
    """Progress of the last re-route of routed items; null if there was none."""


class ConfigChangeOut(msgspec.Struct):
    path: str
    old: Any
    new: Any


class RoutingConfigPutOut(msgspec.Struct):
    version: int
    """The version now in force."""
    changed: bool
    """False when the body changed nothing (no new version was made)."""
    reroute_scheduled: bool
    """Whether the job that re-routes unworked routed items was enqueued."""
    changes: list[ConfigChangeOut]


class TierCountsOut(msgspec.Struct):
    auto: int
    """Auto-accepted (done with the model's label); always 0 for the items now routed."""
    crowd: int
    expert: int


class MovedItemOut(msgspec.Struct):
    item_id: str
    external_id: str
    from_tier: str = msgspec.field(name="from")
    to_tier: str = msgspec.field(name="to")
    priority: float | None
    """Priority under the candidate."""
    labels_needed: int
    reason: str
    """The routing reason the item would get."""


class MovedOut(msgspec.Struct):
    count: int
    by_transition: dict[str, int]
    """e.g. {"crowd->expert": 3, "crowd->auto": 10}"""
    retargeted: int
    """Items that stay in their tier but would want a different number of labels."""
    sample: list[MovedItemOut]
    """Up to 20 moved items, highest priority first."""


class ExpertLoadOut(msgspec.Struct):
    open_now: int
    """Items the expert tier holds now (routed, not settled)."""
    open_candidate: int
    """Items it would hold under the candidate."""
    capacity: int
    """The candidate's expert capacity."""
    capacity_now: int
    """The capacity in force."""
    pinned: int
    """Expert items that stay whatever the config (they have labels or live leases)."""


class PreviewItemsOut(msgspec.Struct):
    routed: int
    """Items not yet done and in a tier queue (gold left out)."""
    movable: int
    """Of those, items nobody has worked on (no labels, no live lease): these may move."""
    pinned: int
    """Items that stay in their tier (labels or live leases)."""
    queued: int
    """Items not scored yet: their scoring job routes them with the version in force then."""


class PreviewOut(msgspec.Struct):
    current_version: int
    changes: list[ConfigChangeOut]
    """Every field the candidate changes, with its old and new value."""
    items: PreviewItemsOut
    now: TierCountsOut
    """Routed items per tier now."""
    candidate: TierCountsOut
    """The same items per tier under the candidate."""
    moved: MovedOut
    expert_load: ExpertLoadOut
