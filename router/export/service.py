"""The export: done items with their labels, predictions, routing and provenance, as NDJSON.

Constant memory whatever the project's size: `export_lines` is a generator that reads the items
in keyset pages of `PAGE_SIZE` on (created_at, id) (the `ix_item_project_created` index; both
keys are immutable, so an item never moves between pages while an export runs), reads the
items' predictions with them, fetches the page's labels and gold answers with one IN query
each, yields the page's lines as one chunk and forgets them. Each page is its own short read
transaction, so a long download holds no transaction open; the price is that the export is not
one snapshot (an item that settles while the export runs appears if the export has not passed
it yet). For incremental exports pass `since` = the time the previous export started: `since`
filters on `settled_at`, so nothing is missed.

Only the columns the lines need are read (never the payload, which may be large).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlmodel import Session, col

from router import audit
from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Annotator, Assignment, GoldAnswer, Item, Label
from router.errors import InvalidInput
from router.projects.service import get_project

__all__ = ["FORMATS", "PAGE_SIZE", "TIERS", "ExportRequest", "export_lines", "start_export"]

log = logging.getLogger(__name__)

FORMATS = ("jsonl",)
TIERS = ("auto", "crowd", "expert")
PAGE_SIZE = 1000
"""Items per keyset page (and per IN query for their labels)."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A validated, authorized and audited export, ready to stream."""

    project_id: str
    include_gold: bool
    """Ops (and admin) exports include gold items; producers never see them."""
    since: datetime | None
    tier: str | None
    page_size: int = PAGE_SIZE


def start_export(
    db: Database,
    actor: Principal,
    project_id: str,
    *,
    fmt: str,
    since: str | None,
    tier: str | None,
) -> ExportRequest:
    """Check the request and record `export.started`; everything that can fail with a clear
    error fails here, before the first byte of the stream is sent."""
    actor.authorize(project_id, Role.OPS, Role.PRODUCER)
    problems: list[dict[str, str]] = []
    if fmt not in FORMATS:
        problems.append(
            {
                "field": "format",
                "message": f"{fmt!r} is not supported; the supported format is "
                f"{', '.join(FORMATS)} (format=jsonl)",
            }
        )
    if tier is not None and tier not in TIERS:
        problems.append({"field": "tier", "message": f"must be one of {', '.join(TIERS)}"})
    since_at = _parse_since(since, problems) if since is not None else None
    if problems:
        msg = "; ".join(p["message"] for p in problems)
        raise InvalidInput(f"the export cannot run as asked: {msg}", extra=problems)
    include_gold = actor.role is not Role.PRODUCER
    with db.session() as session:
        get_project(session, actor, project_id)
        audit.record(
            session,
            actor,
            "export.started",
            object_type="project",
            object_id=project_id,
            project_id=project_id,
            detail={
                "format": fmt,
                "filters": {"since": _iso(since_at), "tier": tier},
                "include_gold": include_gold,
            },
        )
    return ExportRequest(
        project_id=project_id, include_gold=include_gold, since=since_at, tier=tier
    )


def _parse_since(value: str, problems: list[dict[str, str]]) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        problems.append(
            {
                "field": "since",
                "message": "an RFC 3339 timestamp with a UTC offset, e.g. 2024-05-01T00:00:00Z "
                "(in a URL, write a '+' offset as %2B)",
            }
        )
        return None
    return parsed.astimezone(UTC)


def export_lines(db: Database, request: ExportRequest) -> Iterator[bytes]:
    """The export's NDJSON, one chunk of lines per page; reads the next page only when asked."""
    after: tuple[datetime, str] | None = None
    pages = lines = 0
    try:
        while True:
            with db.read() as session:
                chunk, n, after = _page(session, request, after)
            pages += 1
            lines += n
            if n:
                yield chunk
            if n < request.page_size or after is None:
                break
    except GeneratorExit:  # the client went away
        log.info("export of project %s abandoned after %d lines", request.project_id, lines)
        raise
    except Exception as exc:
        # The response has started: the only signal left is to cut the stream short. Litestar
        # ends a sync-iterator stream *cleanly* on ValueError, so re-raise as something else,
        # or a truncated export would look complete.
        log.exception("export of project %s failed after %d lines", request.project_id, lines)
        msg = f"the export failed after {lines} lines"
        raise RuntimeError(msg) from exc
    log.info("export of project %s: %d lines in %d pages", request.project_id, lines, pages)


def _selection(request: ExportRequest) -> ColumnElement[bool]:
    settled = and_(col(Item.status) == "done", col(Item.is_gold).is_(False))
    if request.since is not None:
        settled = and_(settled, col(Item.settled_at) >= request.since)
    if request.tier is not None:
        settled = and_(settled, col(Item.tier) == request.tier)
    if not request.include_gold or request.tier is not None:
        return settled
    # Gold items never settle (their answer is known from the start); `since` applies to when
    # they were registered.
    gold = and_(
        col(Item.is_gold).is_(True),
        col(Item.created_at) >= request.since if request.since is not None else true(),
    )
    return or_(settled, gold)


_ITEM_COLUMNS = (
    col(Item.id),
    col(Item.external_id),
    col(Item.is_gold),
    col(Item.status),
    col(Item.tier),
    col(Item.uncertainty),
    col(Item.disagreement),
    col(Item.priority),
    col(Item.n_labels),
    col(Item.consensus_label),
    col(Item.consensus_confidence),
    col(Item.routing_reason),
    col(Item.config_version),
    col(Item.provenance),
    col(Item.committee),
    col(Item.created_at),
    col(Item.routed_at),
    col(Item.settled_at),
)


def _page(
    session: Session, request: ExportRequest, after: tuple[datetime, str] | None
) -> tuple[bytes, int, tuple[datetime, str] | None]:
    created, item_id = col(Item.created_at), col(Item.id)
    query = select(*_ITEM_COLUMNS).where(
        col(Item.project_id) == request.project_id, _selection(request)
    )
    if after is not None:
        ts, last_id = after
        # The plain bound (created_at >= ts) lets the index scan start at the cursor on both
        # databases, so every page costs the same however deep into the project it is.
        query = query.where(
            created >= ts, or_(created > ts, and_(created == ts, item_id > last_id))
        )
    query = query.order_by(created, item_id).limit(request.page_size)
    items = session.execute(query).all()
    if not items:
        return b"", 0, None
    ids = [row.id for row in items]
    labels = _labels_of(session, ids)
    gold_ids = [row.id for row in items if row.is_gold]
    answers = _answers_of(session, gold_ids) if gold_ids else {}
    encoder = msgspec.json.Encoder()
    out = bytearray()
    for row in items:
        line = _line(row, labels.get(row.id, []), row.committee or [], request, answers)
        encoder.encode_into(line, out, len(out))
        out += b"\n"
    last = items[-1]
    return bytes(out), len(items), (as_utc(last.created_at), last.id)


def _labels_of(session: Session, item_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = session.execute(
        select(
            col(Label.item_id),
            col(Label.id),
            col(Label.annotator_id),
            col(Annotator.external_id),
            col(Assignment.tier),
            col(Label.label),
            col(Label.confidence),
            col(Label.rationale),
            col(Label.duration_ms),
            col(Label.rubric_version),
            col(Label.config_version),
            col(Label.created_at),
            col(Assignment.suggestion),
        )
        .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
        .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
        .where(col(Label.item_id).in_(item_ids))
        .order_by(col(Label.item_id), col(Label.created_at), col(Label.id))
    ).all()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r[0]].append(
            {
                "id": r[1],
                "annotator_id": r[2],
                "annotator_external_id": r[3],
                "annotator_tier": r[4],
                "label": r[5],
                "confidence": r[6],
                "rationale": r[7],
                "duration_ms": r[8],
                "rubric_version": r[9],
                "config_version": r[10],
                "created_at": _iso(r[11]),
                # What model-assisted labeling showed the labeler ({"label", "model",
                # "model_version"}), or null: provenance of how the label was made.
                "suggestion": r[12],
            }
        )
    return out


def _answers_of(session: Session, item_ids: list[str]) -> dict[str, tuple[str, int]]:
    rows = session.execute(
        select(col(GoldAnswer.item_id), col(GoldAnswer.answer), col(GoldAnswer.revision)).where(
            col(GoldAnswer.item_id).in_(item_ids)
        )
    ).all()
    return {item_id: (answer, revision) for item_id, answer, revision in rows}


def _line(
    row: Any,
    labels: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
    request: ExportRequest,
    answers: dict[str, tuple[str, int]],
) -> dict[str, Any]:
    provenance: dict[str, Any] = row.provenance if isinstance(row.provenance, dict) else {}
    trace_id = provenance.get("trace_id")
    line: dict[str, Any] = {
        "external_id": row.external_id,
        "id": row.id,
        "label": row.consensus_label,
        "confidence": row.consensus_confidence,
        "labels": labels,
        "n_labels": len(labels),
        "predictions": predictions,
        "provenance": provenance,
        "trace_id": trace_id,
        "routing": {
            "tier": row.tier,
            "scores": {
                "uncertainty": row.uncertainty,
                "disagreement": row.disagreement,
                "priority": row.priority,
            },
            "config_version": row.config_version,
            "reason": row.routing_reason,
        },
        "auto_accepted": row.tier == "auto",
        "created_at": _iso(row.created_at),
        "routed_at": _iso(row.routed_at),
        "settled_at": _iso(row.settled_at),
    }
    if request.include_gold:
        line["is_gold"] = bool(row.is_gold)
        if row.is_gold:
            answer = answers.get(row.id)
            # The known answer is the item's label; gold items never go through consensus.
            line["label"] = answer[0] if answer else None
            line["confidence"] = 1.0 if answer else None
            line["gold_answer"] = (
                {"answer": answer[0], "revision": answer[1]} if answer is not None else None
            )
    return line


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None
