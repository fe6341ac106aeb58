"""Reading and listing items: the read-out before and after scoring, filters, pagination."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import auth
from tests.integration.helpers import (
    CLASSES,
    NO_SPOT_CHECK,
    by_external_id,
    confident_item,
    get_item,
    hard_item,
    ingest,
    item,
    list_all,
    new_project,
    ordinary_item,
)


def test_item_read_out_before_and_after_scoring(client, project, jobs):
    iid = ingest(client, project, [ordinary_item("o")])["items"][0]["id"]
    before = get_item(client, project, iid)
    assert before["id"] == iid
    assert before["external_id"] == "o"
    assert before["status"] == "queued"
    assert before["tier"] is None
    assert before["scores"] == {"uncertainty": None, "disagreement": None, "priority": None}
    assert before["n_labels"] == 0
    assert before["consensus"] is None
    assert before["routing_reason"] is None
    assert before["config_version"] is None

    jobs()
    after = get_item(client, project, iid)
    assert after["status"] == "routed"
    assert after["tier"] == "crowd"
    scores = after["scores"]
    # One model, p = (0.5, 0.3, 0.2): normalized entropy, no committee disagreement.
    p = np.array([0.5, 0.3, 0.2])
    entropy = float(-(p * np.log(p)).sum() / np.log(3))
    assert scores["uncertainty"] == pytest.approx(entropy)
    assert scores["disagreement"] == pytest.approx(0.0)
    assert scores["priority"] == pytest.approx(0.6 * entropy)
    assert after["labels_needed"] == 3
    assert after["consensus"] is None
    assert "ordinary item" in after["routing_reason"]
    assert after["config_version"] == project["routing_version"] == 1
    assert after["routed_at"] is not None
    assert after["settled_at"] is None


def test_item_without_predictions_goes_to_crowd_at_neutral_priority(client, project, jobs):
    iid = ingest(client, project, [item("bare")])["items"][0]["id"]
    jobs()
    view = get_item(client, project, iid)
    assert view["status"] == "routed"
    assert view["tier"] == "crowd"
    assert view["scores"] == {"uncertainty": None, "disagreement": None, "priority": 0.5}
    assert view["labels_needed"] == 3
    assert "no model predictions" in view["routing_reason"]


@pytest.mark.parametrize("label", [0, 1, 2])
def test_confident_committee_is_auto_accepted_with_its_label(client, admin, jobs, label):
    project = new_project(client, admin, routing=NO_SPOT_CHECK)
    iid = ingest(client, project, [confident_item("c", label=label, p=0.97)])["items"][0]["id"]
    jobs()
    view = get_item(client, project, iid)
    assert view["status"] == "done"
    assert view["tier"] == "auto"
    assert view["consensus"] == {"label": CLASSES[label], "confidence": pytest.approx(0.97)}
    assert view["labels_needed"] == 0
    assert view["n_labels"] == 0
    assert view["scores"]["disagreement"] == pytest.approx(0.0, abs=1e-12)
    assert view["scores"]["uncertainty"] <= 0.15
    assert view["routing_reason"].startswith("auto-accepted")
    assert view["settled_at"] is not None


def test_spot_check_fraction_one_sends_confident_items_to_the_crowd(client, admin, jobs):
    project = new_project(client, admin, routing={"spot_check_fraction": 1.0})
    iid = ingest(client, project, [confident_item("c")])["items"][0]["id"]
    jobs()
    view = get_item(client, project, iid)
    assert (view["status"], view["tier"]) == ("routed", "crowd")
    assert view["consensus"] is None
    assert "spot check" in view["routing_reason"]


def test_ordinal_project_items_are_scored_too(client, admin, jobs):
    project = new_project(
        client,
        admin,
        label_schema={"kind": "ordinal", "levels": ["1", "2", "3", "4", "5"]},
        routing=NO_SPOT_CHECK,
    )
    ingested = ingest(
        client,
        project,
        [item("sure", [0.0, 0.0, 0.0, 0.01, 0.99]), item("unsure", [0.2, 0.2, 0.2, 0.2, 0.2])],
    )
    jobs()
    ids = by_external_id(ingested)
    sure = get_item(client, project, ids["sure"])
    assert (sure["tier"], sure["consensus"]["label"]) == ("auto", "5")
    assert get_item(client, project, ids["unsure"])["tier"] == "crowd"


def test_listing_filters_by_status_and_tier(client, admin, jobs):
    project = new_project(client, admin, routing=NO_SPOT_CHECK)
    ingested = ingest(
        client,
        project,
        [
            confident_item("auto-1"),
            confident_item("auto-2", label=1),
            ordinary_item("crowd-1"),
            item("crowd-2"),
            hard_item("expert-1"),
        ],
    )
    assert len(list_all(client, project, status="queued")) == 5
    assert list_all(client, project, status="routed") == []
    jobs()
    ids = by_external_id(ingested)

    def ext(**filters):
        return sorted(i["external_id"] for i in list_all(client, project, **filters))

    assert ext(status="queued") == []
    assert ext(status="done") == ["auto-1", "auto-2"]
    assert ext(status="routed") == ["crowd-1", "crowd-2", "expert-1"]
    assert ext(tier="auto") == ["auto-1", "auto-2"]
    assert ext(tier="crowd") == ["crowd-1", "crowd-2"]
    assert ext(tier="expert") == ["expert-1"]
    assert ext(status="routed", tier="crowd") == ["crowd-1", "crowd-2"]
    assert ext(status="done", tier="crowd") == []
    listed = {i["id"]: i for i in list_all(client, project)}
    assert set(listed) == set(ids.values())
    # Listed entries carry the same read-out as the single-item endpoint.
    single = get_item(client, project, ids["expert-1"])
    for key in ("status", "tier", "scores", "routing_reason", "config_version", "consensus"):
        assert listed[ids["expert-1"]][key] == single[key]


def test_cursor_pagination_has_no_repeats_and_no_gaps(client, project):
    # Three batches: items of one batch share a creation time, so pages cut through ties.
    expected = []
    for start, size in ((0, 7), (7, 9), (16, 9)):
        batch = [item(f"i{n:02d}") for n in range(start, start + size)]
        expected += [i["id"] for i in ingest(client, project, batch)["items"]]
    assert len(expected) == 25

    seen: list[str] = []
    sizes = []
    params: dict[str, object] = {"limit": 10}
    while True:
        resp = client.get(
            f"/v1/projects/{project['id']}/items",
            params=params,
            headers=auth(project["producer_key"]),
        )
        assert resp.status_code == 200, resp.text
        page = resp.json()
        sizes.append(len(page["items"]))
        seen += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert sizes == [10, 10, 5]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == set(expected)
    # Oldest batch first.
    assert set(seen[:7]) == set(expected[:7])


def test_exact_multiple_of_the_limit_ends_without_an_empty_page(client, project):
    ingest(client, project, [item(f"i{n}") for n in range(10)])
    resp = client.get(
        f"/v1/projects/{project['id']}/items",
        params={"limit": 5},
        headers=auth(project["producer_key"]),
    )
    first = resp.json()
    assert len(first["items"]) == 5
    second = client.get(
        f"/v1/projects/{project['id']}/items",
        params={"limit": 5, "cursor": first["next_cursor"]},
        headers=auth(project["producer_key"]),
    ).json()
    assert len(second["items"]) == 5
    assert second["next_cursor"] is None


def test_cursor_keeps_filters_stable_while_items_are_added(client, project):
    ingest(client, project, [item(f"a{n}") for n in range(6)])
    first = client.get(
        f"/v1/projects/{project['id']}/items",
        params={"limit": 4},
        headers=auth(project["producer_key"]),
    ).json()
    ingest(client, project, [item(f"b{n}") for n in range(3)])
    rest = client.get(
        f"/v1/projects/{project['id']}/items",
        params={"limit": 100, "cursor": first["next_cursor"]},
        headers=auth(project["producer_key"]),
    ).json()
    names = [i["external_id"] for i in first["items"] + rest["items"]]
    assert len(names) == len(set(names)) == 9


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"tier": "gold"}, "tier"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJhIjoxfQ"}, "cursor"),  # base64 of valid JSON, wrong shape
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_listing_parameters_are_client_errors(client, project, params, field):
    resp = client.get(
        f"/v1/projects/{project['id']}/items",
        params=params,
        headers=auth(project["producer_key"]),
    )
    assert resp.status_code in (400, 422), resp.text
    body = resp.json()
    assert body["status_code"] == resp.status_code
    assert body["detail"]
    assert field in resp.text


def test_unknown_item_is_404(client, project):
    resp = client.get(
        f"/v1/projects/{project['id']}/items/nope", headers=auth(project["producer_key"])
    )
    assert resp.status_code == 404
    assert "nope" in resp.json()["detail"]
