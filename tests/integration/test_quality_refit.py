"""Dawid-Skene refit: on demand and scheduled, stored per annotator, used by consensus."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from router.consensus.service import _counted_labels, posteriors
from router.db.models import AnnotatorConfusion, AuditEvent, Item, Project, WebhookEvent, utcnow
from router.projects.label_schema import LabelSchema
from router.projects.service import routing_config
from router.quality import refit as refit_module
from router.quality.refit import due_projects
from tests.conftest import auth
from tests.integration.helpers import (
    add_gold,
    annotator,
    claim,
    ingest,
    item,
    label,
    new_project,
    ordinary_item,
    quiet,
)
from workers.jobs import schedule_refits
from workers.scheduler import Scheduler

GOLD = {"g0": "cat", "g1": "cat", "g2": "dog", "g3": "dog", "g4": "bird", "g5": "bird"}
SWAP = {"cat": "dog", "dog": "dog", "bird": "bird"}  # mistakes every cat for a dog


def _routing(**quality):
    return quiet(
        gold={"rate": {"crowd": 1.0, "expert": 1.0}, "new_annotator_rate": 1.0},
        quality={"min_gold": 1000, **quality},
    )


def _answer_all_gold(client, project, who, answers, answer_of):
    """Claim every gold item as `who` and answer `answer_of(truth)`."""
    truth = {answers["ids"][ext]: value for ext, value in GOLD.items()}
    for _ in range(len(GOLD)):
        task = claim(client, project, who)
        assert task is not None
        assert task["item_id"] in truth
        label(client, task, who, answer_of(truth[task["item_id"]]))


def _setup(client, admin, **quality):
    project = new_project(client, admin, routing=_routing(**quality))
    gold = add_gold(client, project, GOLD)
    good, swapper = annotator(client, project, "good"), annotator(client, project, "swapper")
    _answer_all_gold(client, project, good, gold, lambda t: t)
    _answer_all_gold(client, project, swapper, gold, SWAP.__getitem__)
    return project, good, swapper


def _counts(runtime, annotator_id):
    with runtime.db.read() as session:
        row = session.get(AnnotatorConfusion, annotator_id)
        assert row is not None
        return np.array(row.counts), row.n_labels


def test_refit_on_demand_stores_each_annotator_s_matrix(client, admin, jobs, runtime):
    project, good, swapper = _setup(client, admin)
    pid = project["id"]
    path = f"/v1/projects/{pid}/quality/refit"
    assert client.post(path, headers=auth(good["api_key"])).status_code == 403
    metrics = client.get(f"/v1/projects/{pid}/metrics", headers=auth(project["ops_key"]))
    assert metrics.json()["quality_fit"] is None

    resp = client.post(path, headers=auth(project["ops_key"]))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body == {"job_id": f"refit-{pid}", "enqueued": True, "last_fit": None}
    # A second request while the first waits gets the same job, not a second fit.
    again = client.post(path, headers=auth(project["ops_key"])).json()
    assert again == {"job_id": f"refit-{pid}", "enqueued": False, "last_fit": None}
    jobs()

    fit = client.get(f"/v1/projects/{pid}/metrics", headers=auth(project["ops_key"])).json()[
        "quality_fit"
    ]
    assert fit["n_labels"] == 12
    assert fit["n_items"] == 6
    assert fit["n_gold_items"] == 6
    assert fit["n_annotators"] == 2
    assert fit["iterations"] >= 1
    assert fit["fitted_at"]
    # Gold items are clamped to their answers, so the counts are exact here.
    counts, n = _counts(runtime, swapper["id"])
    assert n == 6
    np.testing.assert_allclose(counts, [[0, 2, 0], [0, 2, 0], [0, 0, 2]], atol=1e-12)
    counts, n = _counts(runtime, good["id"])
    np.testing.assert_allclose(counts, np.eye(3) * 2, atol=1e-12)
    # The next request shows the fit it would replace.
    last = client.post(path, headers=auth(project["ops_key"])).json()["last_fit"]
    assert last["n_labels"] == 12


@pytest.mark.parametrize(
    ("quality", "prior"),
    [({}, (4.0, 1.0)), ({"refit_prior": {"alpha": 1.0, "beta": 0.01}}, (1.0, 0.01))],
)
def test_refit_fits_under_the_configured_refit_prior(
    client, admin, jobs, runtime, monkeypatch, quality, prior
):
    seen = []
    fit = refit_module.refit_counts_from_labels

    def spy(*args, **kwargs):
        seen.append((kwargs["prior_alpha"], kwargs["prior_beta"]))
        return fit(*args, **kwargs)

    monkeypatch.setattr(refit_module, "refit_counts_from_labels", spy)
    project, _good, _swapper = _setup(client, admin, **quality)
    resp = client.post(
        f"/v1/projects/{project['id']}/quality/refit", headers=auth(project["ops_key"])
    )
    assert resp.status_code == 202, resp.text
    jobs()
    assert seen == [prior]


def test_refit_on_demand_of_an_unknown_project_is_404(client, admin):
    assert client.post("/v1/projects/nope/quality/refit", headers=admin).status_code == 404


def test_scheduler_refits_projects_with_new_labels(client, admin, jobs, runtime):
    project, good, _swapper = _setup(client, admin, refit_interval_s=0)
    pid = project["id"]
    assert Scheduler(30.0).run_once()["refit"] == {"refits_enqueued": 1}
    jobs()
    assert _counts(runtime, good["id"])[1] == 6
    # Nothing new since the fit: nothing to do.
    assert schedule_refits() == {"refits_enqueued": 0}
    # A new label makes the project due again.
    ingest(client, project, [ordinary_item("x")])
    jobs()
    task = claim(client, project, good)
    assert task is not None
    assert task["item_id"] not in GOLD
    label(client, task, good, "cat")
    assert due_projects(runtime.db) == [pid]
    assert schedule_refits() == {"refits_enqueued": 1}
    jobs()
    assert _counts(runtime, good["id"])[1] == 7


def test_scheduler_waits_for_the_refit_interval(client, admin, jobs, runtime):
    project, good, _swapper = _setup(client, admin, refit_interval_s=3600)
    pid = project["id"]
    assert schedule_refits() == {"refits_enqueued": 1}  # never fitted: due at once
    jobs()
    ingest(client, project, [ordinary_item("x")])
    jobs()
    label(client, claim(client, project, good), good, "cat")
    assert due_projects(runtime.db) == []
    assert due_projects(runtime.db, now=utcnow() + timedelta(seconds=3601)) == [pid]


@pytest.mark.parametrize("model", ["symmetric", "refit"])
def test_consensus_uses_the_refitted_matrices_when_configured(client, admin, jobs, runtime, model):
    project, _good, swapper = _setup(client, admin, confusion_model=model, refit_prior_strength=2.0)
    pid = project["id"]
    client.post(f"/v1/projects/{pid}/quality/refit", headers=auth(project["ops_key"]))
    jobs()
    ingest(client, project, [ordinary_item("x")])
    jobs()
    task = claim(client, project, swapper)
    assert task is not None
    label(client, task, swapper, "dog")
    jobs()  # the consensus job runs under the configured model without trouble
    with runtime.db.read() as session:
        p = session.get(Project, pid)
        config = routing_config(session, p)
        schema = LabelSchema.parse(p.label_schema)
        items = list(session.execute(select(Item).where(col(Item.id) == task["item_id"])).scalars())
        labels = _counted_labels(session, [task["item_id"]])
        post = {}
        for m in ("symmetric", "refit"):
            c = config.model_copy(
                update={"quality": config.quality.model_copy(update={"confusion_model": m})}
            )
            post[m] = posteriors(session, pid, items, labels, schema, c)[0]
    # The swapper says "dog" for every cat and every dog: under the refit their "dog" hardly
    # separates cat from dog. Under the symmetric model it is evidence for dog against cat.
    # Item prior: committee (0.5, 0.3, 0.2) half and half with the uniform class prior.
    prior_ratio = (0.5 * 0.5 + 0.5 / 3) / (0.5 * 0.3 + 0.5 / 3)  # cat : dog = 25/19
    # Symmetric: Beta(4, 1) + 4 right of 6 = accuracy 8/11, each wrong class 3/22.
    sym = (3 / 22) / (8 / 11)
    # Refit, prior strength 2: column dog, row cat (2 * 3/22 + 2) / 4, row dog (2 * 8/11 + 2) / 4.
    ref = (2 * 3 / 22 + 2) / (2 * 8 / 11 + 2)
    assert post["symmetric"][0] / post["symmetric"][1] == pytest.approx(prior_ratio * sym)
    assert post["refit"][0] / post["refit"][1] == pytest.approx(prior_ratio * ref)
    assert post["refit"][2] < post["symmetric"][2]


def test_metrics_report_agreement_per_rubric_version(client, admin, jobs, runtime):
    project = new_project(client, admin, routing=quiet())
    pid = project["id"]
    a, b = annotator(client, project, "a"), annotator(client, project, "b")

    def work(prefix, answers_a, answers_b):
        ingest(client, project, [ordinary_item(f"{prefix}{i}") for i in range(len(answers_a))])
        jobs()
        for who, answers in ((a, answers_a), (b, answers_b)):
            given = {}
            for _ in answers:
                task = claim(client, project, who)
                assert task is not None
                given[task["item_id"]] = task
            # Label in external-id order, so that a's and b's n-th labels are on one item.
            for (_item, task), value in zip(
                sorted(given.items(), key=lambda kv: kv[1]["payload"]["text"]), answers, strict=True
            ):
                label(client, task, who, value)
        jobs()

    work("r1-", ["cat", "dog", "bird", "cat"], ["cat", "dog", "bird", "cat"])
    with runtime.db.session() as session:  # the rubric changes (no endpoint does this yet)
        session.execute(update(Project).where(col(Project.id) == pid).values(rubric_version="r2"))
    work("r2-", ["cat", "dog", "bird", "cat"], ["dog", "bird", "cat", "cat"])

    body = client.get(f"/v1/projects/{pid}/metrics", headers=auth(project["ops_key"])).json()
    by_rubric = {e["rubric_version"]: e for e in body["agreement_by_rubric"]}
    assert sorted(by_rubric) == ["r1", "r2"]
    assert by_rubric["r1"]["items"] == 4
    assert by_rubric["r2"]["items"] == 4
    assert by_rubric["r1"]["krippendorff_alpha"] == pytest.approx(1.0)
    assert by_rubric["r2"]["krippendorff_alpha"] < 0.2
    for entry in by_rubric.values():
        assert set(entry) >= {"krippendorff_alpha_ci95", "fleiss_kappa", "n_boot"}
    # The project-wide figures cover both versions' labels.
    assert body["agreement"]["items"] == 8
    assert by_rubric["r2"]["krippendorff_alpha"] < body["agreement"]["krippendorff_alpha"] < 1.0


@pytest.mark.parametrize("relabel", [False, True])
def test_a_refit_relabels_settled_items_when_configured(client, admin, jobs, runtime, relabel):
    # The swapper says "dog" for every cat and dog. Before any refit their "dog" weighs as their
    # gold accuracy says and settles the item as a dog; the refit learns that it tells cats from
    # dogs not at all, so the item's prior (the committee's cat) decides after it.
    routing = _routing(confusion_model="refit", refit_prior_strength=0.1)
    routing["consensus"] = {
        "min_labels": 1,
        "stop_confidence": 0.5,
        "escalate_disagreement": 1.0,
        "relabel_after_refit": relabel,
    }
    routing["labels"] = {"crowd_target": 1}
    project = new_project(client, admin, routing=routing)
    gold = add_gold(client, project, GOLD)
    swapper = annotator(client, project, "swapper")
    _answer_all_gold(client, project, swapper, gold, SWAP.__getitem__)
    pid = project["id"]
    ingest(client, project, [item("x", [0.8, 0.1, 0.1])])
    jobs()
    task = claim(client, project, swapper)
    assert task is not None
    label(client, task, swapper, "dog")
    jobs()
    with runtime.db.read() as session:
        settled = session.get(Item, task["item_id"])
        assert settled is not None
        assert (settled.status, settled.consensus_label) == ("done", "dog")
    hook = client.post(
        f"/v1/projects/{pid}/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["item.relabeled"]},
        headers=auth(project["ops_key"]),
    )
    assert hook.status_code == 201, hook.text
    client.post(f"/v1/projects/{pid}/quality/refit", headers=auth(project["ops_key"]))
    jobs()
    with runtime.db.read() as session:
        settled = session.get(Item, task["item_id"])
        assert settled is not None
        assert settled.consensus_label == ("cat" if relabel else "dog")
        told = list(
            session.execute(
                select(WebhookEvent).where(col(WebhookEvent.type) == "item.relabeled")
            ).scalars()
        )
        # Receivers learn of the revision: the new label, the one they were told before.
        assert [(e.data["item_id"], e.data["label"], e.data["previous_label"]) for e in told] == (
            [(settled.id, "cat", "dog")] if relabel else []
        )
        events = session.execute(
            select(AuditEvent).where(col(AuditEvent.action) == "item.relabeled")
        ).scalars()
        assert [e.object_id for e in events] == ([settled.id] if relabel else [])
