"""Annotators' confusion matrices from their gold answers, as consensus and read-outs use them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlmodel import Session, col

from router.db.models import GoldAnswer, Item, Label
from router.maths.dawid_skene import confusion_from_gold
from router.projects.label_schema import LabelSchema
from router.routing.config import RoutingConfig

__all__ = ["gold_confusions"]


def gold_confusions(
    session: Session, annotator_ids: Sequence[str], schema: LabelSchema, config: RoutingConfig
) -> NDArray[np.float64]:
    """(W, K, K) posterior-mean confusion matrices, row = true class, in `annotator_ids` order.

    Each row starts from the annotator prior of the config (alpha on the diagonal, beta spread
    over the other classes, so that its mean accuracy is the prior's) and adds the annotator's
    answers on gold items of that true class.
    """
    position = {a: j for j, a in enumerate(annotator_ids)}
    workers: list[int] = []
    truth: list[int] = []
    given: list[int] = []
    if annotator_ids:
        rows = session.execute(
            select(col(Label.annotator_id), col(GoldAnswer.answer), col(Label.label))
            .join(Item, col(Item.id) == col(Label.item_id))
            .join(GoldAnswer, col(GoldAnswer.item_id) == col(Item.id))
            .where(col(Label.annotator_id).in_(list(annotator_ids)), col(Item.is_gold).is_(True))
        )
        for annotator_id, answer, label in rows:
            t, g = schema.index_of(answer), schema.index_of(label)
            if t is None or g is None:  # answers from an older schema revision
                continue
            workers.append(position[annotator_id])
            truth.append(t)
            given.append(g)
    prior = config.consensus.annotator_prior
    return confusion_from_gold(
        np.asarray(workers, dtype=np.int64),
        np.asarray(truth, dtype=np.int64),
        np.asarray(given, dtype=np.int64),
        len(annotator_ids),
        schema.k,
        prior_diag=prior.alpha,
        prior_off=prior.beta / (schema.k - 1),
    )
