"""GET .../annotators/{aid}/quality: accuracy, confusion, calibration and drift on gold."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import auth
from tests.integration.helpers import add_gold, annotator, claim, label, new_project, quiet

ALWAYS_GOLD = quiet(
    gold={"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0},
    quality={"min_gold": 1000, "drift_window": 4, "drift_margin": 0.4},
)


def _answer_gold(client, project, who, answers):
    """Claim gold items one by one and answer with (label, confidence) from `answers`."""
    for given, confidence in answers:
        task = claim(client, project, who)
        assert task is not None
        label(client, task, who, given, confidence=confidence)


def test_quality_reports_accuracy_confusion_calibration_and_drift(client, admin, jobs):
    project = new_project(client, admin, routing=ALWAYS_GOLD)
    add_gold(client, project, {f"g{i}": "cat" for i in range(12)})
    ann = annotator(client, project, "w0")
    # Eight right then four wrong: accuracy 8/12, and a clear fall at the end (drift).
    answers = [("cat", 0.9)] * 8 + [("dog", 0.9)] * 4
    _answer_gold(client, project, ann, answers)
    jobs()  # the consensus job counts the gold answers in the record
    resp = client.get(
        f"/v1/projects/{project['id']}/annotators/{ann['id']}/quality",
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 200, resp.text
    q = resp.json()
    assert (q["n_gold"], q["n_gold_correct"], q["n_labels"]) == (12, 8, 12)
    lo, hi = q["accuracy_ci"]
    assert lo < q["accuracy"] < hi
    # Beta(4, 1) prior + 8 right, 4 wrong: posterior mean 12/17.
    assert q["accuracy"] == pytest.approx(12 / 17)
    matrix = np.array(q["confusion"])
    assert q["confusion_classes"] == ["cat", "dog", "bird"]
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    # Row "cat": prior (4, 0.5, 0.5) plus answers (8, 4, 0).
    np.testing.assert_allclose(matrix[0], np.array([12, 4.5, 0.5]) / 17)
    # Stated 0.9 throughout, right 2/3 of the time.
    conf, hit = np.full(12, 0.9), np.array([1.0] * 8 + [0.0] * 4)
    assert q["brier"] == pytest.approx(float(np.mean((conf - hit) ** 2)))
    assert q["ece"] == pytest.approx(abs(0.9 - 8 / 12))
    assert sum(b["count"] for b in q["reliability"]) == 12
    assert q["drift"] == {
        "window": 4,
        "recent_accuracy": 0.0,
        "history_accuracy": 1.0,
        # One-sided Fisher exact: no right answer among the last 4 of 12 with 8 right.
        "p_value": pytest.approx(1 / 495),
        "flagged": True,
    }
    assert "drift" in q["flags"]
    assert "overconfident" in q["flags"]


def test_quality_before_any_gold_is_the_prior_with_null_calibration(client, admin):
    project = new_project(client, admin, routing=ALWAYS_GOLD)
    ann = annotator(client, project, "w0")
    q = client.get(
        f"/v1/projects/{project['id']}/annotators/{ann['id']}/quality",
        headers=auth(project["ops_key"]),
    ).json()
    assert q["n_gold"] == 0
    assert q["accuracy"] == pytest.approx(0.8)
    assert (q["ece"], q["brier"], q["reliability"]) == (None, None, None)
    assert q["flags"] == []


def test_quality_is_for_ops_of_the_project(client, admin):
    project = new_project(client, admin)
    other = new_project(client, admin, name="other")
    ann = annotator(client, project, "w0")
    path = f"/v1/projects/{project['id']}/annotators/{ann['id']}/quality"
    assert client.get(path, headers=auth(project["producer_key"])).status_code == 403
    assert client.get(path, headers=auth(ann["api_key"])).status_code == 403
    assert client.get(path, headers=auth(other["ops_key"])).status_code == 404
    missing = f"/v1/projects/{project['id']}/annotators/nope/quality"
    assert client.get(missing, headers=auth(project["ops_key"])).status_code == 404
