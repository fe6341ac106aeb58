"""Quality flags an annotator newly gains, told to the project's webhooks (annotator.flagged).

Called inside the transaction of the change that may raise a flag (a gold answer counted by the
gold-record job, a claim that found no unseen gold), so the event is stored exactly when the
change is.
"""

from __future__ import annotations

from sqlmodel import Session

from router.db.models import Annotator, Project
from router.projects.service import label_schema_of
from router.quality.report import gold_answered, quality_flags
from router.quality.rules import GoldRecord
from router.routing.config import RoutingConfig
from router.webhooks.events import flagged_event
from router.webhooks.outbox import Outbox

__all__ = ["flag_gold_exhausted", "flags_raised_by_gold"]

_EVENT = "annotator.flagged"


def flags_raised_by_gold(
    session: Session,
    project: Project,
    annotator: Annotator,
    label_id: str,
    before: GoldRecord,
    config: RoutingConfig,
) -> list[str]:
    """Emit one event per flag that the gold answer `label_id` raised; the flags raised.

    The label must be in the session (it is flushed by the read of the gold history).
    """
    outbox = Outbox(session, project.id)
    if not outbox.wanted(_EVENT):
        return []  # no hook wants it: spare the read of the annotator's gold history
    schema = label_schema_of(project)
    after = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    exhausted = annotator.gold_exhausted_at is not None
    # Gold labels are counted in order by a job: later answers, not yet counted, are left out.
    answers = gold_answered(session, annotator.id)
    upto = next((i for i, a in enumerate(answers) if a.label_id == label_id), None)
    if upto is not None:
        answers = answers[: upto + 1]
    earlier = [a for a in answers if a.label_id != label_id]
    old = quality_flags(earlier, before, gold_exhausted=exhausted, config=config, schema=schema)
    new = quality_flags(answers, after, gold_exhausted=exhausted, config=config, schema=schema)
    raised = [flag for flag in new if flag not in old]
    for flag in raised:
        outbox.emit(_EVENT, flagged_event(annotator, flag, new, after, config))
    return raised


def flag_gold_exhausted(
    session: Session, project: Project, annotator: Annotator, config: RoutingConfig
) -> None:
    """Emit the event of the gold_exhausted flag, just set on the annotator."""
    outbox = Outbox(session, project.id)
    if not outbox.wanted(_EVENT):
        return
    record = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    flags = quality_flags(
        gold_answered(session, annotator.id),
        record,
        gold_exhausted=True,
        config=config,
        schema=label_schema_of(project),
    )
    outbox.emit(_EVENT, flagged_event(annotator, "gold_exhausted", flags, record, config))
