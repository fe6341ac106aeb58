"""HTTP: /v1/projects/{pid}/export, a streamed NDJSON download."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from router.deps import PrincipalDep, RuntimeDep
from router.export import service

__all__ = ["ExportController"]

NDJSON = "application/x-ndjson"

_DESCRIPTION = f"""\
NDJSON (`{NDJSON}`), one line per done item, oldest first, streamed page by page (constant
memory on the server however large the project). Each line: `external_id`, `id`, `label` and
`confidence` (the consensus), `labels` (every label: `annotator_id`, `annotator_external_id`,
`annotator_tier`, `label`, `confidence`, `rationale`, `duration_ms`, `rubric_version`,
`config_version`, `created_at`), `predictions` (`model`, `model_version`, `probs`),
`provenance` (as ingested), `trace_id` (from the provenance), `routing` (`tier`, `scores`
{{`uncertainty`, `disagreement`, `priority`}}, `config_version`, `reason`), `auto_accepted`,
`created_at`, `routed_at`, `settled_at`.

Producers get ordinary items only. Ops (and admin) also get the gold items, with `is_gold`
true, `gold_answer` {{`answer`, `revision`}} and the answer as `label`; every line of theirs
carries `is_gold`.

Filters: `since` (RFC 3339 with offset): items settled at or after it (gold items: registered
at or after it); pass the time your previous export started to get only what is new. `tier`
(`auto`, `crowd`, `expert`; gold items have no tier and are left out). Only `format=jsonl` is
supported. Every export is recorded in the audit log as `export.started`. A download that
fails part-way is cut short (the chunked body never terminates), never silently complete.
"""


class ExportController(Controller):
    path = "/v1/projects/{pid:str}/export"
    tags = ("export",)

    @get(
        "/",
        sync_to_thread=True,
        summary="Export done items with labels and provenance as NDJSON (ops, producer)",
        description=_DESCRIPTION,
        media_type=NDJSON,
    )
    def export(
        self,
        pid: FromPath[str],
        runtime: RuntimeDep,
        principal: PrincipalDep,
        fmt: Annotated[str, QueryParameter(name="format", description="only `jsonl`")] = "jsonl",
        since: FromQuery[str | None] = None,
        tier: FromQuery[str | None] = None,
    ) -> Stream:
        request = service.start_export(runtime.db, principal, pid, fmt=fmt, since=since, tier=tier)
        return Stream(
            service.export_lines(runtime.db, request),
            media_type=NDJSON,
            headers={
                "Content-Disposition": f'attachment; filename="export-{pid}.jsonl"',
                "Cache-Control": "no-store",
            },
        )
