"""What each dashboard page shows, assembled from the services the API uses (no maths and no
queries of its own): the read-out, the snapshots, the annotators' quality reports and the
routing config history, turned into table rows and SVG charts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from router.annotators.service import list_annotators
from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import as_utc
from router.db.models import ProjectSnapshot
from router.projects.service import get_project
from router.quality.report import annotator_quality
from router.readouts.service import project_readout
from router.readouts.snapshots import recent_snapshots
from router.routing.history import config_history
from router.runtime import Runtime
from router.ui.charts import Series, bar_chart, interval_bar, line_chart, reliability_diagram

__all__ = ["annotator_detail", "annotator_rows", "config_versions", "overview", "project_header"]

HISTORY_POINTS = 240
"""Snapshots drawn in the charts (an hour at the default 15 s interval)."""


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def _ratio(value: float) -> str:
    return f"{value:.2f}"


def project_header(rt: Runtime, viewer: Principal, project_id: str) -> dict[str, Any]:
    viewer.authorize(project_id, Role.OPS)
    with rt.db.read() as session:
        project = get_project(session, viewer, project_id)
    return {"id": project.id, "name": project.name, "routing_version": project.routing_version}


def overview(rt: Runtime, viewer: Principal, project_id: str) -> dict[str, Any]:
    """Counts now, and the charts of the snapshots (agreement comes from the latest one)."""
    viewer.authorize(project_id, Role.OPS)
    readout = project_readout(rt.db, rt.assignments, project_id, with_agreement=False)
    snapshots = recent_snapshots(rt.db, viewer, project_id, limit=HISTORY_POINTS)
    latest = snapshots[-1] if snapshots else None
    experts = readout["experts"]
    capacity = experts["capacity"]
    by_status = readout["items"]["by_status"]
    return {
        "now": datetime.now(UTC),
        "item_counts": readout["items"],
        "queues": readout["queues"],
        "labels": readout["labels"],
        "experts": {
            **experts,
            "share": experts["open"] / capacity if capacity else None,
        },
        "gold_coverage": readout["gold_coverage"],
        "config_version": readout["config_version"],
        "agreement": _agreement(latest),
        "snapshot_interval_s": rt.settings.snapshot_interval_s,
        "n_snapshots": len(snapshots),
        "status_chart": bar_chart(
            [(status, float(n)) for status, n in by_status.items()],
            title="Items by status",
        ),
        "depth_chart": _over_time(
            snapshots,
            "Queue depth per tier over time",
            [("crowd", "queue_crowd"), ("expert", "queue_expert")],
        ),
        "expert_chart": _over_time(
            snapshots,
            "Expert load against capacity over time",
            [("open expert items", "expert_open"), ("capacity", "expert_capacity")],
        ),
        "cost_chart": _over_time(snapshots, "Cost spent over time", [("cost", "cost")]),
        "agreement_chart": _over_time(
            snapshots,
            "Agreement (Krippendorff's alpha) over time",
            [
                ("alpha", "agreement_alpha"),
                ("95% low", "agreement_alpha_lo"),
                ("95% high", "agreement_alpha_hi"),
            ],
            y_max=1.0,
            y_format=_ratio,
        ),
    }


def _agreement(latest: ProjectSnapshot | None) -> dict[str, Any] | None:
    if latest is None or latest.agreement_at is None:
        return None
    return {
        "alpha": latest.agreement_alpha,
        "ci": (
            (latest.agreement_alpha_lo, latest.agreement_alpha_hi)
            if latest.agreement_alpha_lo is not None and latest.agreement_alpha_hi is not None
            else None
        ),
        "n_items": latest.agreement_items,
        "computed_at": as_utc(latest.agreement_at),
    }


def _over_time(
    snapshots: list[ProjectSnapshot],
    title: str,
    fields: list[tuple[str, str]],
    *,
    y_max: float | None = None,
    y_format: Any = None,
) -> str:
    times = [as_utc(s.taken_at).timestamp() for s in snapshots]
    series = [
        Series(name, [(t, getattr(s, attr)) for t, s in zip(times, snapshots, strict=True)])
        for name, attr in fields
    ]
    options: dict[str, Any] = {"x_format": _clock}
    if y_format is not None:
        options["y_format"] = y_format
    return line_chart(
        series,
        title=title,
        y_max=y_max,
        empty_text="no history yet: the scheduler records one point per interval",
        **options,
    )


def annotator_rows(rt: Runtime, viewer: Principal, project_id: str) -> list[dict[str, Any]]:
    """Every annotator with its accuracy interval, ECE, drift and flags (the listing carries
    each annotator's whole quality read-out, built from a few project-wide queries)."""
    rows = []
    for view in list_annotators(rt.db, viewer, project_id):
        q = view["quality"]
        report = q
        lo, hi = q["accuracy_ci"]
        chart = interval_bar(
            q["accuracy"],
            lo,
            hi,
            title=f"accuracy {q['accuracy']:.2f}, 95% interval {lo:.2f} to {hi:.2f}",
        )
        rows.append({**view, "report": report, "interval_chart": chart})
    return rows


def annotator_detail(
    rt: Runtime, viewer: Principal, project_id: str, annotator_id: str
) -> dict[str, Any]:
    report = annotator_quality(rt.db, viewer, project_id, annotator_id)
    return {
        "report": report,
        "reliability_chart": reliability_diagram(
            report["reliability"], title=f"Reliability diagram of {report['external_id']}"
        ),
    }


def config_versions(rt: Runtime, viewer: Principal, project_id: str) -> list[dict[str, Any]]:
    return [
        {
            "version": entry.version,
            "updated_at": entry.updated_at,
            "author": entry.author or ("project creation" if entry.version == 1 else "unknown"),
            "in_force": entry.in_force,
            "changes": entry.changes,
        }
        for entry in config_history(rt.db, viewer, project_id)
    ]
