"""HTTP: POST /v1/projects/{pid}/quality/refit, a Dawid-Skene refit on demand (ops)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, post
from litestar.params import FromPath

from router.deps import PrincipalDep, RuntimeDep
from router.quality.refit import request_refit

__all__ = ["QualityController"]


class QualityController(Controller):
    path = "/v1/projects/{pid:str}/quality"
    tags = ("annotators",)

    @post(
        "/refit",
        status_code=202,
        sync_to_thread=True,
        summary="Refit the annotators' confusion matrices by Dawid-Skene (ops)",
        description=(
            "Enqueues the project's Dawid-Skene refit over all labels of its active annotators "
            "(gold items clamped to their answers) and answers at once: `job_id`, `enqueued` "
            "(false when a refit of the project is already waiting or running; its id is "
            "returned) and `last_fit` (null before the first). The fit's time, label count and "
            "iterations appear in `GET .../metrics` under `quality_fit` once it is done."
        ),
    )
    def refit(
        self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        return request_refit(runtime.db, runtime.jobs, principal, pid)
