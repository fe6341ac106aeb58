"""GET /v1/projects/{pid}/metrics: counts, queue depths, cost, agreement, gold coverage."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from router.db.models import Annotator
from router.maths.agreement import (
    fleiss_kappa,
    krippendorff_alpha,
    mean_pairwise_cohen_kappa,
    value_counts_from_reliability,
)
from router.projects.label_schema import LabelSchema
from router.readouts.service import agreement
from tests.conftest import auth
from tests.integration.helpers import (
    CLASSES,
    add_gold,
    annotator,
    by_external_id,
    claim,
    claim_all,
    hard_item,
    ingest,
    label,
    list_all,
    new_project,
    ordinary_item,
    quiet,
)

COSTS = {"crowd": 0.5, "expert": 4.0}
# Crowd labels per item, by annotator: each of the three labels every crowd item.
TABLE = {
    "w0": {"a": "cat", "b": "dog", "c": "bird", "d": "cat"},
    "w1": {"a": "cat", "b": "dog", "c": "cat", "d": "dog"},
    "w2": {"a": "cat", "b": "bird", "c": "bird", "d": "cat"},
}


def _metrics(client, project, key=None, expect=200):
    resp = client.get(
        f"/v1/projects/{project['id']}/metrics", headers=auth(key or project["ops_key"])
    )
    assert resp.status_code == expect, resp.text
    return resp.json()


def _matrix(table):
    """Raters x items reliability matrix (class indices, NaN where not rated)."""
    items = sorted({i for row in table.values() for i in row})
    out = np.full((len(table), len(items)), np.nan)
    for r, ext in enumerate(sorted(table)):
        for i, it in enumerate(items):
            if it in table[ext]:
                out[r, i] = CLASSES.index(table[ext][it])
    return out


def test_counts_costs_and_agreement_after_the_work_loop(client, admin, jobs):
    project = new_project(client, admin, routing=quiet(costs=COSTS))
    ids = by_external_id(
        ingest(client, project, [ordinary_item(x) for x in "abcd"] + [hard_item("h")])
    )
    ext_of = {v: k for k, v in ids.items()}
    jobs()
    routed = {it["external_id"]: it["tier"] for it in list_all(client, project)}
    assert routed["h"] == "expert"
    assert {routed[x] for x in "abcd"} == {"crowd"}
    before = _metrics(client, project)
    assert before["queues"] == {"crowd": 4, "expert": 1}

    for ext, answers in TABLE.items():
        who = annotator(client, project, ext)
        tasks = claim_all(client, project, who)
        assert sorted(ext_of[t["item_id"]] for t in tasks) == list("abcd")
        for task in tasks:
            label(client, task, who, answers[ext_of[task["item_id"]]])
    expert = annotator(client, project, "e1", tier="expert")
    [task] = claim_all(client, project, expert)
    assert task["item_id"] == ids["h"]
    label(client, task, expert, "dog")
    assert _metrics(client, project)["queues"] == {"crowd": 0, "expert": 0}, "every slot used"
    jobs()  # consensus: items without a confident answer want more crowd labels

    body = _metrics(client, project)
    assert body["config_version"] == 1
    listed = list_all(client, project)
    assert body["items"] == {
        "total": 5,
        "by_status": {"queued": 0, "routed": 0, "done": 0}
        | dict(Counter(it["status"] for it in listed)),
        "by_tier": {"unrouted": 0, "auto": 0, "crowd": 4, "expert": 1},
        "gold": 0,
    }
    open_crowd = [it for it in listed if it["tier"] == "crowd" and it["status"] != "done"]
    assert body["queues"] == {"crowd": len(open_crowd), "expert": 0}
    labels = body["labels"]
    assert labels["total"] == 13
    assert labels["by_tier"] == {"crowd": 12, "expert": 1, "gold": 0}
    assert labels["cost"] == pytest.approx(12 * 0.5 + 1 * 4.0)
    assert labels["gold_cost_at_annotator_tier"] == 0
    assert labels["total_cost"] == pytest.approx(10.0)

    matrix = _matrix(TABLE)  # the expert's single label on h has no pair: left out
    agr = body["agreement"]
    assert agr["level"] == "nominal"
    assert (agr["items"], agr["labels"], agr["raters"]) == (4, 12, 3)
    assert agr["unanimous"] is False
    assert agr["krippendorff_alpha"] == pytest.approx(krippendorff_alpha(matrix), abs=1e-12)
    lo, hi = agr["krippendorff_alpha_ci95"]
    assert -1.0 <= lo <= hi <= 1.0
    assert agr["n_boot"] == 200
    assert agr["fleiss_labels_per_item"] == 3
    assert agr["fleiss_items"] == 4
    counts, _ = value_counts_from_reliability(matrix, np.arange(3))
    assert agr["fleiss_kappa"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)
    assert agr["mean_pairwise_cohen_kappa"] == pytest.approx(
        mean_pairwise_cohen_kappa(matrix, np.arange(3)), abs=1e-12
    )
    assert _metrics(client, project)["agreement"] == agr, "seeded: the same interval again"

    coverage = body["gold_coverage"]
    assert coverage == {
        "annotators": 4,
        "with_gold": 0,
        "mean_gold_per_annotator": 0.0,
        "gold_exhausted": [],
    }


def test_all_agreeing_labels_give_one(client, admin, jobs):
    project = new_project(client, admin, routing=quiet())
    ingest(client, project, [ordinary_item(x) for x in "ab"])
    jobs()
    for ext in ("w0", "w1"):
        who = annotator(client, project, ext)
        for task in claim_all(client, project, who):
            label(client, task, who, "dog")
    agr = _metrics(client, project)["agreement"]
    assert agr["unanimous"] is True
    assert agr["krippendorff_alpha"] == 1.0
    assert agr["krippendorff_alpha_ci95"] == [1.0, 1.0]
    assert agr["fleiss_kappa"] == 1.0
    assert agr["fleiss_labels_per_item"] == 2
    assert agr["mean_pairwise_cohen_kappa"] == 1.0


def test_gold_answers_are_counted_and_priced_at_the_annotators_tier(client, admin, jobs, runtime):
    gold = {"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0}
    project = new_project(client, admin, routing=quiet(costs=COSTS, gold=gold))
    ids = by_external_id(ingest(client, project, [ordinary_item("a")]))
    jobs()
    gold_ids = add_gold(client, project, {"g1": "cat"})["ids"]
    w1 = annotator(client, project, "w1")
    annotator(client, project, "w2")
    first = claim(client, project, w1)
    assert first is not None
    assert first["item_id"] == gold_ids["g1"]
    label(client, first, w1, "cat")
    second = claim(client, project, w1)  # no unseen gold left: flagged, routed work follows
    assert second is not None
    assert second["item_id"] == ids["a"]
    label(client, second, w1, "dog")
    jobs()  # the consensus job counts the gold answer in w1's record

    body = _metrics(client, project)
    assert body["items"]["gold"] == 1
    assert body["items"]["total"] == 1
    assert body["labels"]["by_tier"] == {"crowd": 1, "expert": 0, "gold": 1}
    assert body["labels"]["gold_by_annotator_tier"] == {"crowd": 1, "expert": 0}
    assert body["labels"]["cost"] == pytest.approx(0.5)
    assert body["labels"]["gold_cost_at_annotator_tier"] == pytest.approx(0.5)
    assert body["gold_coverage"] == {
        "annotators": 2,
        "with_gold": 1,
        "mean_gold_per_annotator": 0.5,
        "gold_exhausted": ["w1"],
    }
    with runtime.db.read() as session:
        row = session.get(Annotator, w1["id"])
        assert row is not None
        assert row.gold_exhausted_at is not None
    # One label on one item: no pair, so no agreement.
    assert body["agreement"]["krippendorff_alpha"] is None


def test_an_empty_project_reads_zeros_and_nulls(client, admin):
    project = new_project(client, admin)
    body = _metrics(client, project)
    assert body["items"] == {
        "total": 0,
        "by_status": {"queued": 0, "routed": 0, "done": 0},
        "by_tier": {"unrouted": 0, "auto": 0, "crowd": 0, "expert": 0},
        "gold": 0,
    }
    assert body["queues"] == {"crowd": 0, "expert": 0}
    assert body["labels"]["total"] == 0
    assert body["labels"]["cost"] == 0
    assert body["labels"]["total_cost"] == 0
    agr = body["agreement"]
    for key in (
        "krippendorff_alpha",
        "krippendorff_alpha_ci95",
        "fleiss_kappa",
        "fleiss_labels_per_item",
        "mean_pairwise_cohen_kappa",
    ):
        assert agr[key] is None, key
    assert body["gold_coverage"] == {
        "annotators": 0,
        "with_gold": 0,
        "mean_gold_per_annotator": None,
        "gold_exhausted": [],
    }
    assert body["config_version"] == 1


def test_who_may_read_the_metrics(client, admin):
    project = new_project(client, admin)
    other = new_project(client, admin, name="other")
    _metrics(client, project)
    _metrics(client, project, key=admin["Authorization"].removeprefix("Bearer "))
    for role in ("producer", "tool"):
        _metrics(client, project, key=project[f"{role}_key"], expect=403)
    ann = annotator(client, project, "w1")
    _metrics(client, project, key=ann["api_key"], expect=403)
    _metrics(client, project, key=other["ops_key"], expect=404)
    resp = client.get(f"/v1/projects/{project['id']}/metrics")
    assert resp.status_code == 401
    missing = client.get("/v1/projects/nope/metrics", headers=admin)
    assert missing.status_code == 404


def test_ordinal_alpha_and_uneven_counts():
    schema = LabelSchema.parse({"kind": "ordinal", "levels": ["low", "mid", "high"]})
    triples = [
        ("i1", "r1", "low"),
        ("i1", "r2", "mid"),
        ("i2", "r1", "high"),
        ("i2", "r2", "high"),
        ("i2", "r3", "mid"),
        ("i3", "r2", "low"),
        ("i3", "r3", "low"),
        ("i4", "r1", "mid"),  # alone: no pair
        ("i5", "r1", "bogus"),  # outside the schema: ignored
    ]
    out = agreement(triples, schema)
    nan = np.nan
    matrix = np.array([[0, 2, nan], [1, 2, 0], [nan, 1, 0]])
    assert out["level"] == "ordinal"
    assert out["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha(matrix, "ordinal", np.arange(3)), abs=1e-12
    )
    assert out["fleiss_labels_per_item"] == 2
    assert out["fleiss_items"] == 2
    counts, _ = value_counts_from_reliability(matrix[:, [0, 2]], np.arange(3))
    assert out["fleiss_kappa"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)
    assert out["mean_pairwise_cohen_kappa"] == pytest.approx(
        mean_pairwise_cohen_kappa(matrix, np.arange(3), "quadratic"), abs=1e-12
    )
