"""The work loop end to end: claim, label, consensus, settle."""

from __future__ import annotations

from tests.conftest import auth
from tests.integration.helpers import ingest, new_project, ordinary_item


def _annotator(client, project, admin, ext, tier="crowd"):
    resp = client.post(
        f"/v1/projects/{project['id']}/annotators",
        json={"external_id": ext, "tier": tier},
        headers=auth(project["ops_key"]),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_three_agreeing_labels_settle_an_item(client, admin, jobs, runtime):
    project = new_project(
        client,
        admin,
        routing={
            "spot_check_fraction": 0.0,
            "gold": {"new_annotator_rate": 0.0, "rate": {"crowd": 0.0, "expert": 0.0}},
        },
    )
    pid = project["id"]
    ingest(client, project, [ordinary_item("a")])
    jobs()
    annotators = [_annotator(client, project, admin, f"w{i}") for i in range(3)]
    for ann in annotators:
        task = client.post(f"/v1/projects/{pid}/tasks/next", headers=auth(ann["api_key"]))
        assert task.status_code == 200, task.text
        body = task.json()
        assert set(body) == {
            "assignment_id",
            "item_id",
            "payload",
            "label_schema",
            "rubric_version",
            "lease_expires_at",
        }
        resp = client.post(
            f"/v1/assignments/{body['assignment_id']}/label",
            json={"label": "dog", "confidence": 0.9},
            headers=auth(ann["api_key"]),
        )
        assert resp.status_code == 201, resp.text
        again = client.post(
            f"/v1/assignments/{body['assignment_id']}/label",
            json={"label": "dog", "confidence": 0.9},
            headers=auth(ann["api_key"]),
        )
        assert again.status_code == 200
        assert again.json() == resp.json()
    jobs()
    listed = client.get(f"/v1/projects/{pid}/items", headers=auth(project["ops_key"])).json()
    [it] = listed["items"]
    assert it["status"] == "done", it
    assert it["consensus"]["label"] == "dog"
    assert it["n_labels"] == 3
    # Nobody gets anything more.
    extra = _annotator(client, project, admin, "late")
    none = client.post(f"/v1/projects/{pid}/tasks/next", headers=auth(extra["api_key"]))
    assert none.status_code == 204
