"""HTTP: the annotator work loop (tasks/next, label, release) and gold registration."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from router.deps import RATE_COUNTED_BY_HANDLER, PrincipalDep, RuntimeDep
from router.gold.service import register_gold
from router.idempotency.http import IdempotencyKeyHeader, replay_response
from router.idempotency.store import IdempotentRequest, Recorder, StoredResponse, run_once
from router.labels.service import LabelInput, submit_label
from router.tasks import service
from router.tasks.schemas import GoldRequest, LabelIn, TaskOut

__all__ = ["AssignmentController", "TaskController"]

XAnnotator = Annotated[str | None, HeaderParameter(name="X-Annotator", required=False)]


class TaskController(Controller):
    path = "/v1/projects/{pid:str}"
    tags = ("work loop",)

    @post(
        "/tasks/next",
        sync_to_thread=True,
        status_code=200,
        summary="Claim the annotator's next task under a lease (annotator, tool); 204 if none",
        opt={RATE_COUNTED_BY_HANDLER: True},
    )
    def next_task(
        self,
        pid: FromPath[str],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        x_annotator: XAnnotator = None,
    ) -> Response[TaskOut | None]:
        with runtime.limiter.counting(principal) as rate:  # in the claim's Redis call
            task = service.next_task(
                runtime.db, runtime.assignments, principal, pid, x_annotator, rate
            )
        if task is None:
            return Response(None, status_code=204)
        # Not `asdict`: it deep-copies the payload and the label schema on every claim.
        return Response(TaskOut(**{f.name: getattr(task, f.name) for f in fields(task)}))

    @post(
        "/gold",
        sync_to_thread=True,
        status_code=201,
        tags=("gold",),
        summary="Register gold items with their answers (ops)",
    )
    def gold(
        self,
        pid: FromPath[str],
        data: JSONBody[GoldRequest],
        runtime: RuntimeDep,
        principal: PrincipalDep,
    ) -> dict[str, Any]:
        entries = [
            {
                "external_id": g.external_id,
                "payload": g.payload,
                "answer": g.answer,
                "revision": g.revision,
                "predictions": g.predictions,
            }
            for g in data.items
        ]
        return register_gold(runtime.db, runtime.assignments, principal, pid, entries)


class AssignmentController(Controller):
    path = "/v1/assignments/{aid:str}"
    tags = ("work loop",)

    @post(
        "/label",
        sync_to_thread=True,
        summary="Submit the label of an assignment (its annotator, or a tool acting for it)",
        opt={RATE_COUNTED_BY_HANDLER: True},
    )
    def label(
        self,
        aid: FromPath[str],
        data: JSONBody[LabelIn],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        x_annotator: XAnnotator = None,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[dict[str, Any]]:
        body = LabelInput(
            label=data.label,
            confidence=data.confidence,
            rationale=data.rationale,
            duration_ms=data.duration_ms,
        )
        idem = IdempotentRequest.from_header(
            principal,
            idempotency_key,
            runtime.settings.idempotency_ttl_s,
            "POST",
            f"/v1/assignments/{aid}/label",
            x_annotator,
            msgspec.json.encode(data),
        )

        def write(record: Recorder | None) -> StoredResponse:
            view, created = submit_label(
                runtime.db,
                runtime.assignments,
                runtime.jobs,
                principal,
                aid,
                x_annotator,
                body,
                before_commit=(lambda s, v, c: record(s, 201 if c else 200, v)) if record else None,
                rate=rate,
            )
            return StoredResponse(201 if created else 200, view)

        with runtime.limiter.counting(principal) as rate:  # in the lease's Redis call
            return replay_response(*run_once(runtime.db, idem, write))

    @post(
        "/release",
        sync_to_thread=True,
        status_code=200,
        summary="Give the item back to its queue (its annotator, or a tool acting for it)",
    )
    def release(
        self,
        aid: FromPath[str],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        x_annotator: XAnnotator = None,
    ) -> dict[str, Any]:
        return service.release_task(runtime.db, runtime.assignments, principal, aid, x_annotator)
