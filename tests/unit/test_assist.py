"""The suggestion a task carries, and the anchoring rate: pure functions, by hand."""

from __future__ import annotations

import math

import pytest

from router.maths.calibration import anchoring
from router.routing.config import AssistConfig
from router.tasks.assist import suggestion_for

LABELS = ["cat", "dog", "bird"]
PREDICTIONS = [
    ("m0", "1", [0.6, 0.3, 0.1]),
    ("m1", "2", [0.1, 0.5, 0.4]),
    ("m2", "1", [0.2, 0.5, 0.3]),
]


def test_committee_suggests_the_mean_prediction_top_class() -> None:
    # Mean: (0.3, 0.433, 0.267) -> dog.
    got = suggestion_for(PREDICTIONS, LABELS, AssistConfig(enabled=True))
    assert got == {"label": "dog", "model": "committee", "model_version": "m0:1,m1:2,m2:1"}


def test_a_named_model_suggests_its_own_top_class() -> None:
    got = suggestion_for(PREDICTIONS, LABELS, AssistConfig(enabled=True, model="m0"))
    assert got == {"label": "cat", "model": "m0", "model_version": "1"}
    assert suggestion_for(PREDICTIONS, LABELS, AssistConfig(enabled=True, model="m9")) is None
    # Two versions of one model on the item: the greatest version string is suggested.
    two = [("m0", "1", [0.9, 0.1, 0.0]), ("m0", "2", [0.0, 0.1, 0.9])]
    got = suggestion_for(two, LABELS, AssistConfig(enabled=True, model="m0"))
    assert got == {"label": "bird", "model": "m0", "model_version": "2"}


def test_below_min_confidence_nothing_is_suggested() -> None:
    assist = AssistConfig(enabled=True, min_confidence=0.45)
    assert suggestion_for(PREDICTIONS, LABELS, assist) is None  # committee top is 0.433
    assist = AssistConfig(enabled=True, model="m0", min_confidence=0.6)
    assert suggestion_for(PREDICTIONS, LABELS, assist) == {
        "label": "cat",
        "model": "m0",
        "model_version": "1",
    }


def test_ties_go_to_the_first_class_and_no_predictions_suggest_nothing() -> None:
    tie = [("m0", "1", [0.4, 0.4, 0.2])]
    assert suggestion_for(tie, LABELS, AssistConfig(enabled=True))["label"] == "cat"  # type: ignore[index]
    assert suggestion_for([], LABELS, AssistConfig(enabled=True)) is None


def test_anchoring_counts_only_wrong_suggestions() -> None:
    # Suggestions right on answers 0 and 4 (ignored); wrong on 1, 2, 3, 5; followed on 1 and 3.
    truth = [0, 0, 1, 2, 2, 1]
    given = [0, 2, 1, 0, 2, 1]
    suggested = [0, 2, 0, 0, 2, 2]
    a = anchoring(truth, given, suggested)
    assert (a.n_wrong_suggestions, a.n_followed) == (4, 2)
    assert a.rate == 0.5
    lo, hi = a.interval
    # Jeffreys interval of 2 of 4: Beta(2.5, 2.5) quantiles, symmetric about 1/2.
    assert lo == pytest.approx(1 - hi)
    assert lo == pytest.approx(0.12275, abs=1e-4)


def test_anchoring_with_no_wrong_suggestion_is_undefined() -> None:
    a = anchoring([0, 1], [0, 1], [0, 1])
    assert a.n_wrong_suggestions == 0
    assert math.isnan(a.rate)
    assert a.interval == (0.0, 1.0)
    with pytest.raises(ValueError, match="one length"):
        anchoring([0, 1], [0], [0, 1])
