"""HTTP: /v1/projects/{pid}/annotators."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, patch, post
from litestar.params import FromPath, JSONBody

from router.annotators import service
from router.annotators.schemas import AnnotatorCreate, AnnotatorCreated, AnnotatorPatch
from router.deps import PrincipalDep, RuntimeDep
from router.quality.report import annotator_quality

__all__ = ["AnnotatorController"]


class AnnotatorController(Controller):
    path = "/v1/projects/{pid:str}/annotators"
    tags = ("annotators",)

    @post("/", status_code=201, sync_to_thread=True, summary="Register an annotator (ops)")
    def create(
        self,
        pid: FromPath[str],
        data: JSONBody[AnnotatorCreate],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> AnnotatorCreated:
        annotator, raw = service.create_annotator(
            runtime.db, principal, pid, external_id=data.external_id, tier=data.tier
        )
        return AnnotatorCreated(
            id=annotator.id,
            external_id=annotator.external_id,
            tier=annotator.tier,
            status=annotator.status,
            api_key=raw,
        )

    @get("/", sync_to_thread=True, summary="List annotators with a quality summary (ops)")
    def list(
        self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> list[dict[str, Any]]:
        return service.list_annotators(runtime.db, principal, pid)

    @patch("/{aid:str}", sync_to_thread=True, summary="Change an annotator's tier or status (ops)")
    def update(
        self,
        pid: FromPath[str],
        aid: FromPath[str],
        data: JSONBody[AnnotatorPatch],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> dict[str, Any]:
        return service.update_annotator(
            runtime.db,
            runtime.assignments,
            principal,
            pid,
            aid,
            tier=data.tier,
            status=data.status,
            reason=data.reason,
        )

    @get(
        "/{aid:str}/quality",
        sync_to_thread=True,
        summary="An annotator's accuracy, confusion, calibration and drift on gold (ops)",
    )
    def quality(
        self, pid: FromPath[str], aid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        return annotator_quality(runtime.db, principal, pid, aid)
