"""Gold items: registered by ops, served blind at the configured rate, scored at once."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sqlalchemy import select
from sqlmodel import col

from router.consensus.service import class_prior
from router.db.models import Annotator, Item
from router.maths.posterior import accuracy_posterior, item_posteriors, symmetric_confusion
from router.projects.label_schema import LabelSchema
from tests.conftest import CATEGORICAL, auth
from tests.integration.helpers import (
    add_gold,
    annotator,
    annotators_by_external_id,
    by_external_id,
    claim,
    claim_all,
    get_item,
    ingest,
    install_clock,
    item,
    label,
    list_all,
    new_project,
    quiet,
    release,
)
from workers.jobs import reap_leases

ALWAYS = {"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0}
ID = re.compile(r"[A-Za-z0-9_-]{16}")


def _project(client, admin, jobs, n_items=0, **gold):
    project = new_project(client, admin, routing=quiet(gold=gold))
    ids: dict[str, str] = {}
    if n_items:
        ids = by_external_id(ingest(client, project, [item(f"i{k}") for k in range(n_items)]))
        jobs()
    return project, ids


def test_ops_registers_gold(client, admin, jobs, runtime):
    project, _ = _project(client, admin, jobs)
    body = add_gold(client, project, {"g1": "cat", "g2": "dog"})
    assert body["accepted"] == 2
    assert set(body["ids"]) == {"g1", "g2"}
    with runtime.db.read() as session:
        rows = list(
            session.execute(select(Item).where(col(Item.project_id) == project["id"])).scalars()
        )
    assert {r.external_id for r in rows} == {"g1", "g2"}
    assert all(r.is_gold for r in rows)
    assert runtime.redis.scard(runtime.assignments.prefix(project["id"]) + "gold") == 2


def test_a_producer_may_not_register_gold(client, admin, jobs):
    project, _ = _project(client, admin, jobs)
    add_gold(client, project, {"g1": "cat"}, key=project["producer_key"], expect=403)
    add_gold(client, project, {"g1": "cat"}, key=project["tool_key"], expect=403)


def test_a_gold_answer_outside_the_schema_is_refused(client, admin, jobs, runtime):
    project, _ = _project(client, admin, jobs)
    body = add_gold(client, project, {"g1": "cat", "g2": "horse"}, expect=422)
    [problem] = body["extra"]
    assert problem["index"] == 1
    assert problem["field"] == "answer"
    assert "horse" in problem["message"]
    assert "bird" in problem["message"]
    with runtime.db.read() as session:
        assert session.execute(select(Item)).first() is None, "all or nothing"


def test_rate_one_serves_gold_while_unseen_gold_remains(client, admin, jobs):
    project, ids = _project(client, admin, jobs, n_items=2, **ALWAYS)
    gold = add_gold(client, project, {f"g{k}": "cat" for k in range(3)})["ids"]
    ann = annotator(client, project, "w1")
    tasks = claim_all(client, project, ann)
    got = [t["item_id"] for t in tasks]
    assert set(got[:3]) == set(gold.values()), "gold first, each once"
    assert set(got[3:]) == set(ids.values())
    assert len(got) == 5


def test_rate_zero_never_serves_gold(client, admin, jobs):
    project, ids = _project(client, admin, jobs, n_items=3)
    gold = add_gold(client, project, {f"g{k}": "cat" for k in range(3)})["ids"]
    for k in range(3):
        ann = annotator(client, project, f"w{k}")
        got = {t["item_id"] for t in claim_all(client, project, ann)}
        assert got == set(ids.values())
        assert not got & set(gold.values())


def test_new_annotators_get_gold_at_the_warmup_rate(client, admin, jobs):
    # Warm-up: rate 1 until 2 gold answers, then the tier's rate (0).
    project, ids = _project(
        client, admin, jobs, n_items=2, new_annotator_rate=1.0, warmup=2, rate={"crowd": 0.0}
    )
    gold = set(add_gold(client, project, {f"g{k}": "cat" for k in range(4)})["ids"].values())
    ann = annotator(client, project, "w1")
    for _ in range(2):
        task = claim(client, project, ann)
        assert task["item_id"] in gold
        label(client, task, ann, "cat")
        jobs()  # the gold-record job counts the answer
    got = {t["item_id"] for t in claim_all(client, project, ann)}
    assert got == set(ids.values())


def test_gold_and_routed_tasks_look_alike(client, admin, jobs):
    project, ids = _project(client, admin, jobs, n_items=1, **ALWAYS)
    gold = add_gold(client, project, {"g": "dog"})["ids"]["g"]
    ann = annotator(client, project, "w1")
    gold_task, routed_task = claim_all(client, project, ann)
    assert gold_task["item_id"] == gold
    assert routed_task["item_id"] == ids["i0"]
    assert set(gold_task) == set(routed_task)
    for key in ("assignment_id", "item_id"):
        assert ID.fullmatch(gold_task[key]), gold_task[key]
        assert ID.fullmatch(routed_task[key]), routed_task[key]
    assert gold_task["label_schema"] == routed_task["label_schema"]
    assert gold_task["rubric_version"] == routed_task["rubric_version"]
    # The label responses do not tell them apart either, and carry no correctness.
    wrong = label(client, gold_task, ann, "cat")
    routed = label(client, routed_task, ann, "cat")
    assert set(wrong) == set(routed)
    assert not {"correct", "answer", "is_gold", "gold"} & set(wrong)
    assert "dog" not in str(wrong.values())


def test_a_gold_answer_updates_the_annotators_record_through_the_job(client, admin, jobs):
    project, _ = _project(client, admin, jobs, **ALWAYS)
    gold = add_gold(client, project, {"g1": "cat", "g2": "dog", "g3": "bird"})["ids"]
    answers = {v: k for k, v in gold.items()}
    truth = {"g1": "cat", "g2": "dog", "g3": "bird"}
    ann = annotator(client, project, "w1")
    expected_correct = 0
    for n in range(1, 4):
        task = claim(client, project, ann)
        ext = answers[task["item_id"]]
        value = truth[ext] if n != 2 else "cat" if truth[ext] != "cat" else "dog"
        expected_correct += value == truth[ext]
        label(client, task, ann, value, confidence=0.9)
        # The request leaves the record alone (its timing must not tell gold apart)...
        assert annotators_by_external_id(client, project)["w1"]["quality"]["n_gold"] == n - 1
        jobs()  # ...the consensus job counts the answer
        quality = annotators_by_external_id(client, project)["w1"]["quality"]
        assert quality["n_gold"] == n
        assert quality["n_gold_correct"] == expected_correct
    assert expected_correct == 2


def test_gold_labels_never_enter_consensus(client, admin, jobs, runtime):
    project, ids = _project(client, admin, jobs, n_items=1, **ALWAYS)
    gold = add_gold(client, project, {"g1": "bird", "g2": "bird"})["ids"]
    queue = runtime.jobs.queue
    for k in range(3):
        ann = annotator(client, project, f"w{k}")
        for task in claim_all(client, project, ann)[:2]:
            assert task["item_id"] in gold.values()
            label(client, task, ann, "bird")
    # Gold labels are marked like routed ones (the same path, the same timing); the consensus
    # run drains their marks and leaves gold items as they were.
    assert queue.count == 1
    assert runtime.redis.zcard("lr:consensus:marks") == len(gold)
    jobs()
    assert runtime.redis.zcard("lr:consensus:marks") == 0
    with runtime.db.read() as session:
        rows = list(
            session.execute(select(Item).where(col(Item.id).in_(list(gold.values())))).scalars()
        )
        prior = class_prior(session, project["id"], LabelSchema.parse(CATEGORICAL))
    # A gold label updates its item as a routed label does (n_labels), and nothing more.
    assert {(r.status, r.consensus_label, r.n_labels) for r in rows} == {("routed", None, 3)}
    np.testing.assert_allclose(prior, [1 / 3] * 3)
    # The real item still wants its three labels; gold answers did not count toward them.
    real = get_item(client, project, ids["i0"])
    assert (real["status"], real["n_labels"]) == ("routed", 0)
    for k in range(3):
        ann = annotators_by_external_id(client, project)[f"w{k}"]
        assert ann["quality"]["n_gold"] == 2


def test_a_real_items_posterior_is_its_own_labels_only(client, admin, jobs):
    """Gold answers weigh each labeler (accuracy), they are not votes on real items."""
    project, ids = _project(client, admin, jobs, n_items=1, **ALWAYS)
    add_gold(client, project, {"g1": "bird", "g2": "cat"})
    for k in range(3):
        ann = annotator(client, project, f"w{k}")
        tasks = claim_all(client, project, ann)
        assert len(tasks) == 3
        for task in tasks:
            # Gold answered "bird" and "bird" (one right, one wrong); the real item "bird".
            label(client, task, ann, "bird")
    jobs()
    it = get_item(client, project, ids["i0"])
    assert (it["status"], it["n_labels"]) == ("done", 3)
    # Uniform prior x three labels "bird" from annotators of accuracy Beta(4 + 1, 1 + 1).
    accuracy, _, _ = accuracy_posterior(np.array([1]), np.array([2]), 4.0, 1.0)
    expected = item_posteriors(
        np.full((1, 3), 1 / 3),
        np.zeros(3, dtype=np.int64),
        np.full(3, 2),
        symmetric_confusion(accuracy, 3),
        np.zeros(3, dtype=np.int64),
    )[0]
    assert it["consensus"]["label"] == "bird"
    assert it["consensus"]["confidence"] == pytest.approx(expected[2], rel=1e-9)


def test_routed_work_follows_when_all_gold_was_seen_and_the_annotator_is_flagged(
    client, admin, jobs, runtime
):
    project, ids = _project(client, admin, jobs, n_items=1, **ALWAYS)
    gold = add_gold(client, project, {"g1": "cat"})["ids"]
    ann = annotator(client, project, "w1")
    first = claim(client, project, ann)
    assert first["item_id"] == gold["g1"]
    assert not annotators_by_external_id(client, project)["w1"]["quality"]["gold_exhausted"]
    second = claim(client, project, ann)
    assert second["item_id"] == ids["i0"], "routed work once all gold is seen"
    with runtime.db.read() as session:
        row = session.get(Annotator, ann["id"])
    assert row is not None
    assert row.gold_exhausted_at is not None
    assert annotators_by_external_id(client, project)["w1"]["quality"]["gold_exhausted"]


def test_gold_items_never_show_in_producers_listings(client, admin, jobs):
    project, ids = _project(client, admin, jobs, n_items=2)
    gold = add_gold(client, project, {"g1": "cat"})["ids"]
    listed = {i["id"] for i in list_all(client, project)}
    assert listed == set(ids.values())
    for status in ("routed", "queued", "done"):
        assert gold["g1"] not in {i["id"] for i in list_all(client, project, status=status)}
    resp = client.get(
        f"/v1/projects/{project['id']}/items/{gold['g1']}", headers=auth(project["producer_key"])
    )
    assert resp.status_code == 404


def test_a_released_gold_task_is_not_served_again(client, admin, jobs):
    project, ids = _project(client, admin, jobs, n_items=1, **ALWAYS)
    gold = add_gold(client, project, {"g1": "cat"})["ids"]
    ann = annotator(client, project, "w1")
    task = claim(client, project, ann)
    assert task["item_id"] == gold["g1"]
    release(client, task, ann)
    assert [t["item_id"] for t in claim_all(client, project, ann)] == [ids["i0"]]
    other = annotator(client, project, "w2")
    assert claim(client, project, other)["item_id"] == gold["g1"]


def test_a_gold_answer_on_a_lapsed_lease_counts_like_a_routed_one(client, admin, jobs, monkeypatch):
    """Gold holds no slot: once its lease lapsed nobody else can have taken it."""
    clock = install_clock(monkeypatch)
    project, ids = _project(client, admin, jobs, n_items=1, **ALWAYS)
    gold = add_gold(client, project, {"g1": "cat"})["ids"]
    ann = annotator(client, project, "w1")
    gold_task, routed_task = claim(client, project, ann), claim(client, project, ann)
    assert (gold_task["item_id"], routed_task["item_id"]) == (gold["g1"], ids["i0"])
    clock.advance(11 * 60)
    assert reap_leases() == {"expired": 2}
    routed = client.post(
        f"/v1/assignments/{routed_task['assignment_id']}/label",
        json={"label": "cat"},
        headers=auth(ann["api_key"]),
    )
    answered = client.post(
        f"/v1/assignments/{gold_task['assignment_id']}/label",
        json={"label": "cat"},
        headers=auth(ann["api_key"]),
    )
    assert routed.status_code == answered.status_code == 201, answered.text
    jobs()
    assert annotators_by_external_id(client, project)["w1"]["quality"]["n_gold"] == 1


def test_a_middling_rate_mixes_gold_in(client, admin, jobs):
    """Rate 0.5: about half the claims serve gold (bounds fail with probability < 1e-6)."""
    n = 40
    project, ids = _project(
        client, admin, jobs, n_items=n, rate={"crowd": 0.5}, new_annotator_rate=0.5
    )
    gold = set(add_gold(client, project, {f"g{k}": "cat" for k in range(n)})["ids"].values())
    ann = annotator(client, project, "w1")
    served = [claim(client, project, ann)["item_id"] for _ in range(n)]
    n_gold = sum(iid in gold for iid in served)
    assert 5 <= n_gold <= 35, n_gold
    assert set(served) - gold <= set(ids.values())
