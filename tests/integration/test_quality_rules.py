"""Onboarding and the quality rule: gold answers suspend annotators, automatically."""

from __future__ import annotations

from router.db.models import Annotator
from tests.integration.helpers import (
    add_gold,
    annotator,
    annotators_by_external_id,
    audit_events,
    by_external_id,
    claim,
    claim_all,
    get_item,
    ingest,
    item,
    label,
    new_project,
    quiet,
    redis_slots,
)
from workers.jobs import reconcile

GOLD = {"g1": "cat", "g2": "dog", "g3": "bird", "g4": "cat"}
WRONG = {"cat": "dog", "dog": "bird", "bird": "cat"}


def _project(client, admin, jobs, n_items=2, **routing):
    project = new_project(client, admin, routing=quiet(**routing))
    ids = by_external_id(ingest(client, project, [item(f"i{k}") for k in range(n_items)]))
    jobs()
    gold = add_gold(client, project, GOLD)["ids"]
    return project, ids, {v: GOLD[k] for k, v in gold.items()}


def _answer(client, task, ann, truth, right):
    value = truth[task["item_id"]]
    label(client, task, ann, value if right else WRONG[value])


# --------------------------------------------------------------------------------------------
# Onboarding
# --------------------------------------------------------------------------------------------

ONBOARDING = {"onboarding_tasks": 3, "onboarding_min_accuracy": 0.6}


def test_the_first_tasks_are_gold_and_routed_work_follows_a_pass(client, admin, jobs, runtime):
    project, ids, truth = _project(client, admin, jobs, gold=ONBOARDING)
    ann = annotator(client, project, "w1")
    for n in range(3):
        task = claim(client, project, ann)
        assert task["item_id"] in truth, "onboarding serves gold only"
        _answer(client, task, ann, truth, right=n != 0)  # 2 of 3: 67% >= 60%
    jobs()  # the consensus job counts gold answers in the annotator's record
    quality = annotators_by_external_id(client, project)["w1"]["quality"]
    assert quality["onboarded_at"] is not None
    [event] = audit_events(runtime, project["id"], "annotator.onboarded")
    assert event.object_id == ann["id"]
    got = {t["item_id"] for t in claim_all(client, project, ann)}
    assert got == set(ids.values()), "gold rate 0 after onboarding: routed work only"


def test_no_routed_work_before_onboarding_is_over(client, admin, jobs):
    project, _ids, truth = _project(client, admin, jobs, gold=ONBOARDING)
    ann = annotator(client, project, "w1")
    # Claimed, not yet answered: still onboarding, so only gold, and then nothing.
    tasks = claim_all(client, project, ann)
    assert {t["item_id"] for t in tasks} == set(truth)
    assert claim(client, project, ann, expect=204) is None


def test_failing_onboarding_suspends_with_a_reason(client, admin, jobs, runtime):
    project, _ids, truth = _project(client, admin, jobs, gold=ONBOARDING)
    ann = annotator(client, project, "w1")
    for n in range(3):
        task = claim(client, project, ann)
        _answer(client, task, ann, truth, right=n == 0)  # 1 of 3: 33% < 60%
    jobs()
    listed = annotators_by_external_id(client, project)["w1"]
    assert listed["status"] == "suspended"
    assert "failed onboarding" in listed["status_reason"]
    assert listed["quality"]["onboarded_at"] is None
    body = claim(client, project, ann, expect=403)
    assert "failed onboarding: 1 of 3" in body["detail"]
    [event] = audit_events(runtime, project["id"], "annotator.suspended")
    assert event.object_id == ann["id"]
    assert event.detail["automatic"] is True
    assert "failed onboarding" in event.detail["reason"]


def test_a_suspended_annotator_cannot_label_what_it_holds(client, admin, jobs):
    project, _ids, truth = _project(client, admin, jobs, gold=ONBOARDING)
    ann = annotator(client, project, "w1")
    tasks = claim_all(client, project, ann)
    assert len(tasks) == len(GOLD)
    for task in tasks[:3]:
        _answer(client, task, ann, truth, right=False)
    jobs()
    assert annotators_by_external_id(client, project)["w1"]["status"] == "suspended"
    body = label(client, tasks[3], ann, "cat", expect=403)
    assert "suspended" in body["detail"]


# --------------------------------------------------------------------------------------------
# The quality rule
# --------------------------------------------------------------------------------------------

# Prior Beta(4, 1): 0 of 3 correct gives Beta(4, 4), whose upper 95% bound (0.82) is below 0.9;
# 3 of 3 gives Beta(7, 1), upper bound 0.996.
QUALITY = {"min_gold": 3, "suspend_below": 0.9}
ALWAYS = {"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0}


def test_no_suspension_before_min_gold(client, admin, jobs):
    project, _ids, truth = _project(client, admin, jobs, gold=ALWAYS, quality=QUALITY)
    ann = annotator(client, project, "w1")
    for _ in range(2):
        _answer(client, claim(client, project, ann), ann, truth, right=False)
    jobs()
    assert annotators_by_external_id(client, project)["w1"]["status"] == "active"
    _answer(client, claim(client, project, ann), ann, truth, right=False)
    # The request leaves the record alone; the consensus job counts the answer and suspends.
    assert annotators_by_external_id(client, project)["w1"]["status"] == "active"
    jobs()
    listed = annotators_by_external_id(client, project)["w1"]
    assert listed["status"] == "suspended"
    assert "accuracy on gold too low: 0 of 3 correct" in listed["status_reason"]
    assert "below 0.90" in listed["status_reason"]


def test_a_good_annotator_is_not_suspended(client, admin, jobs):
    project, _ids, truth = _project(client, admin, jobs, gold=ALWAYS, quality=QUALITY)
    ann = annotator(client, project, "w1")
    for _ in range(4):
        _answer(client, claim(client, project, ann), ann, truth, right=True)
    jobs()
    assert annotators_by_external_id(client, project)["w1"]["status"] == "active"


def test_low_accuracy_suspends_and_the_labels_stop_counting(client, admin, jobs, runtime):
    """An item whose only dissenting label came from a suspended annotator settles without it.

    Three good annotators and a spammer, each served the four gold items first (rate 1), then
    the real item. The spammer labels the real item while its last gold answer is pending, then
    answers that gold wrong; the next job run counts it, suspends the spammer, gives the real
    item's slot back and leaves the spammer's label out of its consensus.
    """
    quality = {**QUALITY, "min_gold": 4}
    project, ids, truth = _project(client, admin, jobs, n_items=1, gold=ALWAYS, quality=quality)
    real = ids["i0"]
    good = [annotator(client, project, f"w{k}") for k in range(3)]
    spammer = annotator(client, project, "spam")
    # The spammer: three gold wrong (not suspended yet: the fourth is claimed, not answered)...
    tasks = [claim(client, project, spammer) for _ in range(5)]
    assert {t["item_id"] for t in tasks[:4]} == set(truth)
    assert tasks[4]["item_id"] == real
    for task in tasks[:3]:
        _answer(client, task, spammer, truth, right=False)
    label(client, tasks[4], spammer, "cat")  # ...the dissenting label on the real item...
    # ...and two good annotators: all gold right, then "bird" on the real item.
    for ann in good[:2]:
        got = claim_all(client, project, ann)
        assert [t["item_id"] for t in got][4:] == [real]
        for task in got[:4]:
            _answer(client, task, ann, truth, right=True)
        label(client, got[4], ann, "bird")
    assert get_item(client, project, real)["n_labels"] == 3
    assert redis_slots(runtime, project["id"], real) == (0, 0)
    # The spammer's fourth wrong gold answer suspends it (once the job counted it), audited.
    _answer(client, tasks[3], spammer, truth, right=False)
    assert annotators_by_external_id(client, project)["spam"]["status"] == "active"
    jobs()
    listed = annotators_by_external_id(client, project)["spam"]
    assert listed["status"] == "suspended"
    assert "accuracy on gold too low: 0 of 4 correct" in listed["status_reason"]
    [event] = audit_events(runtime, project["id"], "annotator.suspended")
    assert event.object_id == spammer["id"]
    assert event.detail["automatic"] is True
    # Two counted labels of the three wanted: the spammer's slot is open again.
    it = get_item(client, project, real)
    assert it["status"] == "routed"
    assert redis_slots(runtime, project["id"], real) == (1, 0)
    reconcile()  # the reconciler agrees: it must not close the slot again
    assert redis_slots(runtime, project["id"], real) == (1, 0)
    third = claim_all(client, project, good[2])
    for task in third[:4]:
        _answer(client, task, good[2], truth, right=True)
    assert third[4]["item_id"] == real
    label(client, third[4], good[2], "bird")
    jobs()
    it = get_item(client, project, real)
    assert it["status"] == "done"
    assert it["consensus"]["label"] == "bird"
    assert "with 3 crowd labels" in it["routing_reason"]
    with runtime.db.read() as session:
        row = session.get(Annotator, spammer["id"])
    assert row is not None
    assert row.status == "suspended"


def test_after_ops_suspends_a_labeler_the_reconciler_reopens_the_slot(client, admin, jobs, runtime):
    """Suspension by ops (not by the rule): the reconciler counts labels like consensus does."""
    project = new_project(client, admin, routing=quiet())
    real = by_external_id(ingest(client, project, [item("a")]))["a"]
    jobs()
    workers = [annotator(client, project, f"w{k}") for k in range(4)]
    for ann, value in zip(workers[:3], ("cat", "dog", "dog"), strict=True):
        label(client, claim(client, project, ann), ann, value)
    resp = client.patch(
        f"/v1/projects/{project['id']}/annotators/{workers[0]['id']}",
        json={"status": "suspended", "reason": "spam"},
        headers={"Authorization": f"Bearer {project['ops_key']}"},
    )
    assert resp.status_code == 200, resp.text
    jobs()
    assert get_item(client, project, real)["status"] == "routed"  # 2 counted labels of 3
    reconcile()
    assert redis_slots(runtime, project["id"], real) == (1, 0)
    label(client, claim(client, project, workers[3]), workers[3], "dog")
    jobs()
    it = get_item(client, project, real)
    assert (it["status"], it["consensus"]["label"]) == ("done", "dog")
