"""Model-assisted labeling: suggestions in tasks/next, recorded, exported; anchoring on gold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from router.db.models import Assignment
from tests.conftest import auth
from tests.integration.helpers import (
    annotator,
    claim,
    claim_all,
    ingest,
    item,
    label,
    new_project,
    quiet,
)

# Every item below goes to the crowd: three unsure, disagreeing models.
CROWD = [[0.5, 0.3, 0.2], [0.3, 0.45, 0.25], [0.4, 0.2, 0.4]]  # mean (0.4, 0.317, 0.283): cat


def _project(client: Any, admin: Any, assist: dict[str, Any] | None, **extra: Any) -> Any:
    routing = quiet(**({"assist": assist} if assist is not None else {}), **extra)
    return new_project(client, admin, routing=routing)


def _gold(
    client: Any, project: Any, entries: dict[str, tuple[str, list[list[float]] | None]]
) -> Any:
    body = {
        "items": [
            {
                "external_id": ext,
                "payload": {"text": ext},
                "answer": answer,
                **(
                    {
                        "predictions": [
                            {"model": f"m{m}", "model_version": "1", "probs": p}
                            for m, p in enumerate(committee)
                        ]
                    }
                    if committee
                    else {}
                ),
            }
            for ext, (answer, committee) in entries.items()
        ]
    }
    return client.post(
        f"/v1/projects/{project['id']}/gold", json=body, headers=auth(project["ops_key"])
    )


def test_no_suggestion_unless_the_config_turns_it_on(client, admin, jobs):
    project = _project(client, admin, None)
    ingest(client, project, [item("a", *CROWD)])
    jobs()
    task = claim(client, project, annotator(client, project, "w0"))
    assert task is not None
    assert "suggestion" not in task


def test_committee_suggestion_is_shown_recorded_and_exported(client, admin, jobs, runtime):
    project = _project(client, admin, {"enabled": True})
    ingest(client, project, [item("a", *CROWD)])
    jobs()
    ann = annotator(client, project, "w0")
    task = claim(client, project, ann)
    assert task is not None
    assert task["suggestion"] == {
        "label": "cat",
        "model": "committee",
        "model_version": "m0:1,m1:1,m2:1",
    }
    with runtime.db.read() as session:
        row = session.execute(
            select(Assignment).where(Assignment.id == task["assignment_id"])
        ).scalar_one()
    assert row.suggestion == task["suggestion"]
    # Two more labels settle it (min_labels 2); the export names what each labeler was shown.
    label(client, task, ann, "dog")
    for ext in ("w1", "w2"):
        other = annotator(client, project, ext)
        label(client, claim(client, project, other), other, "dog")  # type: ignore[arg-type]
    jobs()
    resp = client.get(
        f"/v1/projects/{project['id']}/export?format=jsonl", headers=auth(project["ops_key"])
    )
    assert resp.status_code == 200, resp.text
    lines = [line for line in resp.text.splitlines() if line]
    assert len(lines) == 1, resp.text
    labels = json.loads(lines[0])["labels"]
    assert {lb["suggestion"]["label"] for lb in labels} == {"cat"}
    assert all("score" not in lb["suggestion"] for lb in labels)


def test_a_named_model_tiers_and_min_confidence(client, admin, jobs):
    assist = {"enabled": True, "model": "m1", "tiers": ["crowd"], "min_confidence": 0.44}
    project = _project(client, admin, assist, experts={"take_crowd_work": True})
    only_m0 = item("c", [0.5, 0.3, 0.2])
    ingest(
        client,
        project,
        [
            item("a", *CROWD),  # m1 says dog at 0.45: shown
            item("b", [0.5, 0.3, 0.2], [0.3, 0.4, 0.3], [0.4, 0.2, 0.4]),  # m1: 0.4 < 0.44
            only_m0,  # no prediction from m1
        ],
    )
    jobs()
    # Experts are not in `tiers`: no suggestion for them (here taking crowd work).
    expert = annotator(client, project, "e0", tier="expert")
    for task in claim_all(client, project, expert):
        assert "suggestion" not in task
        release_resp = client.post(
            f"/v1/assignments/{task['assignment_id']}/release", headers=auth(expert["api_key"])
        )
        assert release_resp.status_code == 200, release_resp.text
    crowd = annotator(client, project, "w0")
    ids = {t["payload"]["text"]: t.get("suggestion") for t in claim_all(client, project, crowd)}
    assert ids == {
        "a": {"label": "dog", "model": "m1", "model_version": "1"},
        "b": None,
        "c": None,
    }


def test_gold_items_carry_predictions_and_suggestions_like_routed_ones(client, admin, jobs):
    always_gold = {"gold": {"rate": {"crowd": 0.5, "expert": 0.5}, "new_annotator_rate": 0.5}}
    project = _project(client, admin, {"enabled": True}, **always_gold)
    resp = _gold(client, project, {"g0": ("bird", CROWD)})  # a wrong suggestion: cat
    assert resp.status_code == 201, resp.text
    ingest(client, project, [item("a", *CROWD)])
    jobs()
    ann = annotator(client, project, "w0")
    tasks = []
    for _ in range(60):  # gold is served on a coin toss: claim until both came
        resp = client.post(f"/v1/projects/{project['id']}/tasks/next", headers=auth(ann["api_key"]))
        if resp.status_code == 200:
            tasks.append(resp.json())
        if len(tasks) == 2:
            break
    assert len(tasks) == 2
    assert set(tasks[0]) == set(tasks[1])
    assert [t["suggestion"] for t in tasks] == [tasks[0]["suggestion"]] * 2


def test_gold_predictions_are_validated_like_ingest(client, admin):
    project = _project(client, admin, {"enabled": True})
    resp = _gold(client, project, {"g0": ("cat", [[0.5, 0.6, 0.1]]), "g1": ("cat", None)})
    assert resp.status_code == 422, resp.text
    problems = resp.json()["extra"]
    assert problems == [
        {
            "index": 0,
            "field": "predictions[0].probs",
            "message": "must sum to 1 (within 1e-06), sums to 1.2",
        }
    ]
    # Nothing of the request was stored.
    assert _gold(client, project, {"g1": ("cat", None)}).json()["accepted"] == 1


@pytest.mark.parametrize(
    ("assist", "field"),
    [
        ({"enabled": True, "tiers": ["boss"]}, "assist.tiers.0"),
        ({"enabled": True, "min_confidence": 1.5}, "assist.min_confidence"),
        ({"enabled": "yes"}, "assist.enabled"),
        ({"enabled": True, "colour": "red"}, "assist.colour"),
    ],
)
def test_an_invalid_assist_section_is_refused_with_its_path(client, admin, assist, field):
    project = _project(client, admin, None)
    resp = client.post(
        f"/v1/projects/{project['id']}/routing-config/preview",
        json={"config": {"assist": assist}},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 422, resp.text
    assert field in resp.text


def test_anchoring_is_flagged_for_who_copies_wrong_suggestions(client, admin, jobs):
    gold_only = {
        "gold": {"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0},
        "quality": {"min_gold": 1000, "anchoring_min_answers": 8, "anchoring_threshold": 0.5},
    }
    project = _project(client, admin, {"enabled": True}, **gold_only)
    # Ten gold items whose committee suggests cat while the answer is bird.
    assert _gold(client, project, {f"g{i}": ("bird", CROWD) for i in range(10)}).status_code == 201
    copier, careful = annotator(client, project, "copier"), annotator(client, project, "careful")
    for who, answer in ((copier, "cat"), (careful, "bird")):
        for task in claim_all(client, project, who):
            assert task["suggestion"]["label"] == "cat"
            label(client, task, who, answer)
    jobs()
    reports = {}
    for who in (copier, careful):
        resp = client.get(
            f"/v1/projects/{project['id']}/annotators/{who['id']}/quality",
            headers=auth(project["ops_key"]),
        )
        assert resp.status_code == 200, resp.text
        reports[who["external_id"]] = resp.json()
    a = reports["copier"]["anchoring"]
    assert (a["n_wrong_suggestions"], a["n_followed"], a["rate"]) == (10, 10, 1.0)
    assert a["rate_ci"][0] > 0.5
    assert a["flagged"] is True
    assert "anchoring" in reports["copier"]["flags"]
    b = reports["careful"]["anchoring"]
    assert (b["n_wrong_suggestions"], b["n_followed"], b["flagged"]) == (10, 0, False)
    assert "anchoring" not in reports["careful"]["flags"]
    # The annotator list carries the same read-out.
    listing = client.get(
        f"/v1/projects/{project['id']}/annotators", headers=auth(project["ops_key"])
    ).json()
    by_ext = {a["external_id"]: a for a in listing}
    assert by_ext["copier"]["quality"]["anchoring"] == a
    assert "anchoring" in by_ext["copier"]["quality"]["flags"]
    assert by_ext["careful"]["quality"]["drift"]["window"] == 20
