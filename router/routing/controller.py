"""HTTP: /v1/projects/{pid}/routing-config (ops): read, replace and preview the routing config."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, post, put
from litestar.params import FromPath, JSONBody

from router.deps import PrincipalDep, RuntimeDep
from router.routing import versions
from router.routing.schemas import (
    ConfigChangeOut,
    ExpertLoadOut,
    MovedItemOut,
    MovedOut,
    PreviewItemsOut,
    PreviewOut,
    RerouteOut,
    RoutingConfigIn,
    RoutingConfigOut,
    RoutingConfigPutOut,
    TierCountsOut,
)

__all__ = ["RoutingConfigController"]

_BODY = (
    'Body: `{"config": {...}}`. A full routing config (the shape of `config/routing.yaml`) '
    "replaces the one in force; a partial one (any subset of sections and fields, e.g. "
    '`{"thresholds": {"expert_min_priority": 0.6}}`) is merged over the version in force, '
    "field by field. Unknown fields and invalid values give 422 listing every problem with its "
    "path in `extra` (`[{field, message}]`, e.g. `config.thresholds.auto_max_uncertainty`)."
)


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _changes(changes: list[dict[str, Any]]) -> list[ConfigChangeOut]:
    return [ConfigChangeOut(path=c["path"], old=c["old"], new=c["new"]) for c in changes]


class RoutingConfigController(Controller):
    path = "/v1/projects/{pid:str}/routing-config"
    tags = ("routing config",)

    @get(
        "/",
        sync_to_thread=True,
        summary="The routing config in force (ops)",
        description=(
            "The version in force, who made it and when, and `reroute`: the progress of the "
            "job that moved routed items to the latest version (null if there was none)."
        ),
    )
    def read(
        self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> RoutingConfigOut:
        current = versions.current_version(runtime.db, runtime.assignments, principal, pid)
        reroute = current.reroute
        return RoutingConfigOut(
            version=current.version,
            config=current.config,
            updated_by=current.updated_by,
            updated_at=_iso(current.updated_at),
            reroute=msgspec.convert(reroute, RerouteOut, from_attributes=True)
            if reroute is not None
            else None,
        )

    @put(
        "/",
        sync_to_thread=True,
        summary="Replace the routing config (ops); in force at once, no restart",
        description=(
            _BODY + " On success a new version is stored and is in force for every API process and "
            "worker on their next read (newly ingested batches, claims, labels, consensus). "
            "Routed items nobody has worked on yet (no labels, no live lease) are then "
            "re-routed under it by a background job, whose progress `GET` shows. A body that "
            "changes nothing makes no new version (`changed: false`). On 422 the config in "
            "force stays as it was."
        ),
    )
    def replace(
        self,
        pid: FromPath[str],
        data: JSONBody[RoutingConfigIn],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> RoutingConfigPutOut:
        outcome = versions.put_config(runtime.db, runtime.jobs, principal, pid, data.config)
        return RoutingConfigPutOut(
            version=outcome.version,
            changed=outcome.changed,
            reroute_scheduled=outcome.reroute_scheduled,
            changes=_changes(outcome.changes),
        )

    @post(
        "/preview",
        status_code=200,
        sync_to_thread=True,
        summary="What a candidate routing config would do to the items not yet done (ops)",
        description=(
            _BODY
            + " Changes nothing. Scores and routes, under the candidate, the routed items that "
            "a PUT would re-route (no labels, no live lease); the others stay in their tier "
            "and count against expert capacity. Returns the routed items per tier now and "
            "under the candidate, the items that would move (count, per transition, and up to "
            "20 of them, highest priority first, with the reason they would get) and the "
            "expert load against capacity."
        ),
    )
    def preview(
        self,
        pid: FromPath[str],
        data: JSONBody[RoutingConfigIn],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> PreviewOut:
        p = versions.preview_config(runtime.db, runtime.assignments, principal, pid, data.config)
        return PreviewOut(
            current_version=p.current_version,
            changes=_changes(p.changes),
            items=PreviewItemsOut(
                routed=p.routed, movable=p.movable, pinned=p.pinned, queued=p.queued
            ),
            now=TierCountsOut(**p.now),
            candidate=TierCountsOut(**p.candidate),
            moved=MovedOut(
                count=p.moved,
                by_transition=p.transitions,
                retargeted=p.retargeted,
                sample=[
                    MovedItemOut(
                        item_id=s["item_id"],
                        external_id=s["external_id"],
                        from_tier=s["from"],
                        to_tier=s["to"],
                        priority=s["priority"],
                        labels_needed=s["labels_needed"],
                        reason=s["reason"],
                    )
                    for s in p.sample
                ],
            ),
            expert_load=ExpertLoadOut(**p.expert),
        )
