from __future__ import annotations

from tests.conftest import auth


def test_ingest_then_route(client, project, jobs, runtime):
    pid = project["id"]
    body = {
        "items": [
            {
                "external_id": "a",
                "payload": {"text": "x"},
                "predictions": [{"model": "m", "model_version": "1", "probs": [0.2, 0.5, 0.3]}],
            },
        ]
    }
    resp = client.post(
        f"/v1/projects/{pid}/items", json=body, headers=auth(project["producer_key"])
    )
    assert resp.status_code == 202, resp.text
    jobs()
    iid = resp.json()["items"][0]["id"]
    item = client.get(f"/v1/projects/{pid}/items/{iid}", headers=auth(project["producer_key"]))
    assert item.json()["status"] == "routed"
    assert runtime.assignments.depth(pid, "crowd") == 1
