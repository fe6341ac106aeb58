"""A scripted labeling campaign over the HTTP API: simulated annotators, start to finish.

The "done when" proof of the work loop: ten crowd annotators of accuracy 0.6 to 0.9, two
experts at 0.97 and one spammer answering at random work a 3-class project of 150 items (some
confident enough to auto-accept, most for the crowd, the hard ones for the experts) with 40 gold
items mixed in blind. Every item must settle, the spammer must be suspended (and nobody good),
and the router's final labels must beat majority vote over the very same labels.

`pytest -s` prints the figures; `CAMPAIGN_SEED=<int>` runs another campaign.
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlmodel import col

from router.db.models import Annotator, Assignment, Item, Label
from tests.conftest import auth
from tests.integration.helpers import CLASSES, ingest, list_all, new_project
from workers.jobs import schedule_refits

SEED = int(os.environ.get("CAMPAIGN_SEED", "6"))
# Which confusion matrices consensus uses (`quality.confusion_model`); unset: the default.
CONFUSION_MODEL = os.environ.get("CAMPAIGN_CONFUSION_MODEL")
K = len(CLASSES)
N_ITEMS = 150
N_GOLD = 40
CLASS_FREQ = [0.5, 0.3, 0.2]  # cat, dog, bird: some class imbalance
CROWD_ACCURACIES = [round(float(a), 3) for a in np.linspace(0.6, 0.9, 10)]
EXPERT_ACCURACY = 0.97
MAX_ROUNDS = 150  # a campaign takes ~60-70 rounds
STALL_ROUNDS = 10  # rounds in which nobody is served a non-gold item: the loop is stuck

# Why each override (everything else is config/routing.yaml):
ROUTING: dict[str, Any] = {
    # Auto-acceptance decided by the scores alone. The spot-check draw hashes the item's random
    # id, so with spot checks on, the auto tier's size would change from run to run.
    "spot_check_fraction": 0.0,
    # Room for every hard item: this campaign is about who labels what, not about a full tier.
    "experts": {"capacity": 1000},
    # Catching a random 3-class spammer (accuracy 1/3) takes gold: the rule below suspends when
    # the UPPER 95% credible bound of accuracy falls under the bar, which for a spammer takes
    # 12-25 gold answers, and an annotator claims only ~60 tasks in this campaign (at the
    # default rates, 0.3 for the first 10 gold answers then 0.1, the spammer would see ~12).
    # So gold is dense while an annotator is new (70% of claims until 20 gold answers), then
    # 30%: about 45% of all labels go to gold, the price of this test's certainty.
    "gold": {"rate": {"crowd": 0.3, "expert": 0.05}, "new_annotator_rate": 0.7, "warmup": 20},
    # The bar sits at the bottom of the crowd's range: an annotator of true accuracy 0.6 or
    # better is kept with 97.5% confidence at each check; the spammer goes as soon as the data
    # rule 0.6 out. min_gold 12: no verdict on a handful of answers.
    # Refit interval 0: the scheduler's refit pass, run once a round below, refits the
    # Dawid-Skene model whenever a round brought new labels.
    "quality": {"min_gold": 12, "suspend_below": 0.6, "refit_interval_s": 0}
    | ({"confusion_model": CONFUSION_MODEL} if CONFUSION_MODEL else {}),
    # A weaker annotator prior than the default Beta(4, 1), worth 3 gold answers instead of 5,
    # so that gold evidence dominates sooner, in the suspension rule and the consensus weights
    # alike: under Beta(4, 1) a spammer's upper bound stays above 0.6 until ~25 gold answers.
    "consensus": {"annotator_prior": {"alpha": 2.0, "beta": 1.0}},
}


@dataclass
class SimAnnotator:
    name: str
    tier: str
    accuracy: float | None  # None: a spammer, answering uniformly at random
    rng: np.random.Generator
    id: str = ""
    key: str = ""
    suspended_round: int | None = None
    claims: int = 0

    def answer(self, truth: int) -> int:
        # Each annotator draws from a stream of their own, and whether an answer is right does
        # not depend on the item: their n-th answer is right or wrong whatever the router
        # served, so their gold record stays the same however routing changes around it.
        if self.accuracy is None:
            return (truth + int(self.rng.integers(K))) % K  # uniform, whatever the truth
        if self.rng.random() < self.accuracy:
            return truth
        return (truth + 1 + int(self.rng.integers(K - 1))) % K  # one of the other classes


class GoldDice:
    """Stands in for the router's gold draws (`router.tasks.service._rng`, from the OS in
    production): seeded, one stream per annotator, so whether a claim serves gold depends on
    that annotator's own claims only. Set `current` before each claim."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.current = ""
        self._streams: dict[str, random.Random] = {}

    def random(self) -> float:
        stream = self._streams.get(self.current)
        if stream is None:
            stream = self._streams[self.current] = random.Random(f"{self.seed}:{self.current}")
        return stream.random()


class SeededIds:
    """Stands in for `secrets` in `router.db.models.new_id`: the same ids in every run."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}:ids")

    def token_urlsafe(self, nbytes: int) -> str:
        return base64.urlsafe_b64encode(self._rng.randbytes(nbytes)).rstrip(b"=").decode()


@dataclass
class Campaign:
    """What a run produced: the router's view of it and the simulation's truth."""

    rounds: int
    seconds: float
    team: list[SimAnnotator]
    final: list[dict[str, Any]]  # the items listing at the end
    annotators: dict[str, dict[str, Any]]  # the annotators listing at the end, by external_id
    truth: dict[str, int]  # by item id, gold included
    kind: dict[str, str]  # by item id: auto, ordinary, misleading, hard
    votes: dict[str, list[int]]  # every label of every non-gold item, by item id
    spent: Counter[str]  # labels on non-gold items, by assignment tier
    figures: dict[str, Any] = field(default_factory=dict)


def _committee(rng: np.random.Generator, truth: int) -> tuple[str, NDArray[np.float64]]:
    """(kind, 3 x K predictions) of a committee that is informative but imperfect."""
    others = [k for k in range(K) if k != truth]
    kind = str(rng.choice(["auto", "ordinary", "hard"], p=[0.12, 0.73, 0.15]))
    if kind == "auto":
        # All three models sure of the truth: uncertainty ~0.1, disagreement ~0: auto-accepted.
        rows = []
        for _ in range(3):
            p = np.zeros(K)
            p[truth] = rng.uniform(0.975, 0.995)
            p[others] = rng.dirichlet([1.0, 1.0]) * (1.0 - p[truth])
            rows.append(p)
        return kind, np.array(rows)
    if kind == "ordinary":
        # The committee leans 0.45-0.7 towards one class: the truth for most items, a wrong
        # class for ~15% of them; the models scatter a little around that lean. Priority
        # ~0.35-0.6: crowd.
        top = rng.uniform(0.45, 0.7)
        mean = np.zeros(K)
        if rng.random() < 0.15:
            kind = "misleading"
            wrong = int(rng.choice(others))
            mean[wrong] = top
            mean[truth] = rng.uniform(0.15, 1.0 - top)
            mean[[k for k in others if k != wrong]] = 1.0 - top - mean[truth]
        else:
            mean[truth] = top
            mean[others] = rng.dirichlet([2.0, 2.0]) * (1.0 - top)
        mean = np.maximum(mean, 0.01)
        return kind, rng.dirichlet(mean / mean.sum() * 40.0, size=3)
    # Each model sure of a different class, one of them right: priority ~0.7-0.8, experts.
    rows = []
    for k in rng.permutation(K):
        s = rng.uniform(0.7, 0.9)
        p = np.full(K, (1.0 - s) / 2)
        p[k] = s
        rows.append(p)
    return kind, np.array(rows)


def _prediction(model: int, probs: NDArray[np.float64]) -> dict[str, Any]:
    # Rounded, the rounding error put on the largest entry: the API wants a sum of 1 ± 1e-6.
    p = np.round(probs / probs.sum(), 6)
    p[np.argmax(p)] += 1.0 - p.sum()
    return {"model": f"m{model}", "model_version": "1", "probs": p.tolist()}


def _majority(votes: list[int], rng: np.random.Generator) -> int:
    counts = np.bincount(votes, minlength=K)
    return int(rng.choice(np.flatnonzero(counts == counts.max())))


def _tie_share(votes: list[int], truth: int) -> float:
    counts = np.bincount(votes, minlength=K)
    top = np.flatnonzero(counts == counts.max())
    return 1.0 / len(top) if truth in top else 0.0


def run_campaign(
    client: Any, admin: dict[str, str], jobs: Any, runtime: Any, seed: int, dice: GoldDice
) -> Campaign:
    """Build the campaign from `seed`, work it to the end over HTTP and collect the outcome."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    project = new_project(client, admin, name="campaign", routing=ROUTING)
    pid = project["id"]
    ops = auth(project["ops_key"])

    # The data: items with committees, gold items with answers.
    truth: dict[str, int] = {}
    kind: dict[str, str] = {}
    batch, hidden = [], []
    for i in range(N_ITEMS):
        t = int(rng.choice(K, p=CLASS_FREQ))
        k, committee = _committee(rng, t)
        ext = f"item-{i:03d}"
        preds = [_prediction(m, probs) for m, probs in enumerate(committee)]
        batch.append({"external_id": ext, "payload": {"text": ext}, "predictions": preds})
        hidden.append((t, k))
    body = ingest(client, project, batch)
    assert body["accepted"] == N_ITEMS
    for sent, stored, (t, k) in zip(batch, body["items"], hidden, strict=True):
        assert sent["external_id"] == stored["external_id"]
        truth[stored["id"]], kind[stored["id"]] = t, k
    gold_truth = [int(rng.choice(K, p=CLASS_FREQ)) for _ in range(N_GOLD)]
    gold = [
        {"external_id": f"gold-{g:03d}", "payload": {"text": f"gold-{g:03d}"}, "answer": CLASSES[t]}
        for g, t in enumerate(gold_truth)
    ]
    resp = client.post(f"/v1/projects/{pid}/gold", json={"items": gold}, headers=ops)
    assert resp.status_code == 201, resp.text
    gold_ids = set()
    for stored, t in zip(resp.json()["items"], gold_truth, strict=True):
        truth[stored["id"]] = t
        gold_ids.add(stored["id"])
    jobs()  # score and route the batch

    # The people, each with a random stream of their own.
    people = [(f"crowd-{i}", "crowd", a) for i, a in enumerate(CROWD_ACCURACIES)]
    people.append(("spammer", "crowd", None))
    people += [(f"expert-{i}", "expert", EXPERT_ACCURACY) for i in range(2)]
    team = [
        SimAnnotator(name, tier, acc, np.random.default_rng([seed, n]))
        for n, (name, tier, acc) in enumerate(people)
    ]
    for ann in team:
        resp = client.post(
            f"/v1/projects/{pid}/annotators",
            json={"external_id": ann.name, "tier": ann.tier},
            headers=ops,
        )
        assert resp.status_code == 201, resp.text
        ann.id, ann.key = resp.json()["id"], resp.json()["api_key"]

    # The work loop: a round gives every active annotator, in a random order, one claim.
    rounds = stalled = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        served = 0  # non-gold items handed out this round
        active = [a for a in team if a.suspended_round is None]
        for j in rng.permutation(len(active)):
            ann = active[j]
            dice.current = ann.name
            task = client.post(f"/v1/projects/{pid}/tasks/next", headers=auth(ann.key))
            if task.status_code == 403:  # suspended (by a gold answer of an earlier round)
                ann.suspended_round = rounds
                continue
            if task.status_code == 204:  # nothing for them now
                continue
            assert task.status_code == 200, task.text
            claimed = task.json()
            ann.claims += 1
            served += claimed["item_id"] not in gold_ids
            resp = client.post(
                f"/v1/assignments/{claimed['assignment_id']}/label",
                json={"label": CLASSES[ann.answer(truth[claimed["item_id"]])]},
                headers=auth(ann.key),
            )
            assert resp.status_code == 201, resp.text
        schedule_refits()  # the scheduler's refit pass: this round's labels make the project due
        jobs()  # the refit, then consensus on this round's labels
        if not list_all(client, project, status="routed"):  # (gold is not listed)
            break
        stalled = 0 if served else stalled + 1
        if stalled >= STALL_ROUNDS:
            break

    final = list_all(client, project)
    resp = client.get(f"/v1/projects/{pid}/annotators", headers=ops)
    assert resp.status_code == 200, resp.text
    annotators = {a["external_id"]: a for a in resp.json()}

    # Every label the campaign produced on a non-gold item, straight from the database.
    with runtime.db.read() as session:
        rows = session.execute(
            select(col(Label.item_id), col(Label.label), col(Assignment.tier))
            .join(Item, col(Item.id) == col(Label.item_id))
            .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
            .where(col(Item.project_id) == pid, col(Item.is_gold).is_(False))
        ).all()
    votes: dict[str, list[int]] = {}
    spent: Counter[str] = Counter()
    for item_id, value, tier in rows:
        votes.setdefault(item_id, []).append(CLASSES.index(value))
        spent[tier] += 1
    campaign = Campaign(
        rounds=rounds,
        seconds=time.perf_counter() - started,
        team=team,
        final=final,
        annotators=annotators,
        truth=truth,
        kind=kind,
        votes=votes,
        spent=spent,
    )
    campaign.figures = _figures(campaign, seed)
    return campaign


def _figures(c: Campaign, seed: int) -> dict[str, Any]:
    # Auto-accepted items have no human label: they are left out of both accuracies (the
    # router's label for them is the model's, and majority vote has no votes to count).
    labeled = sorted(
        (it for it in c.final if it["status"] == "done" and it["id"] in c.votes),
        key=lambda it: it["external_id"],  # a stable order for the tie-breaking draws
    )
    auto = [it for it in c.final if it["tier"] == "auto"]
    vote_rng = np.random.default_rng(seed + 1)  # majority vote breaks ties at random
    n = max(1, len(labeled))

    def right(it: dict[str, Any]) -> bool:
        return CLASSES.index(it["consensus"]["label"]) == c.truth[it["id"]]

    spammer = c.annotators["spammer"]
    return {
        "labeled": len(labeled),
        "router": sum(map(right, labeled)) / n,
        "majority": sum(
            _majority(c.votes[it["id"]], vote_rng) == c.truth[it["id"]] for it in labeled
        )
        / n,
        # Majority vote with each tie counted at its expected value (1/m for a tie of m
        # classes that includes the truth): majority vote without the luck of the draw.
        "majority_expected": sum(_tie_share(c.votes[it["id"]], c.truth[it["id"]]) for it in labeled)
        / n,
        "auto": len(auto),
        "auto_accuracy": sum(map(right, auto)) / max(1, len(auto)),
        "tiers": dict(Counter(it["tier"] for it in c.final)),
        "kinds": dict(Counter(c.kind[it["id"]] for it in c.final)),
        "labels": dict(c.spent),
        "gold_labels": sum(a["quality"]["n_gold"] for a in c.annotators.values()),
        "cost": c.spent["crowd"] * 1.0 + c.spent["expert"] * 10.0,  # config/routing.yaml costs
        "spammer_gold": spammer["quality"]["n_gold"],
        "suspended": sorted(n for n, a in c.annotators.items() if a["status"] == "suspended"),
    }


def _report(c: Campaign, seed: int) -> None:
    f = c.figures
    print(f"\ncampaign seed {seed}: {c.rounds} rounds in {c.seconds:.1f}s")
    for ann in c.team:
        view = c.annotators[ann.name]
        q = view["quality"]
        acc = "random" if ann.accuracy is None else f"{ann.accuracy:.3f}"
        print(
            f"  {ann.name:9s} {acc:6s} {ann.claims:3d} claims, gold {q['n_gold_correct']:2d}/"
            f"{q['n_gold']:2d}, accuracy {q['accuracy']:.2f} "
            f"[{q['accuracy_ci'][0]:.2f}, {q['accuracy_ci'][1]:.2f}] {view['status']}"
            + (f" from round {ann.suspended_round}" if ann.suspended_round else "")
        )
    print(
        f"  items by tier {f['tiers']}, by kind {f['kinds']}; labels on items {f['labels']} "
        f"(cost {f['cost']:.0f}), on gold {f['gold_labels']}"
    )
    print(
        f"  accuracy on the {f['labeled']} human-labeled items: router {f['router']:.3f}, "
        f"majority vote over the same labels {f['majority']:.3f} (ties at their expected "
        f"value: {f['majority_expected']:.3f}); {f['auto']} auto-accepted at "
        f"{f['auto_accuracy']:.3f}; spammer {c.annotators['spammer']['status']} after "
        f"{f['spammer_gold']} gold answers"
    )


def _unsettled(c: Campaign, runtime: Any) -> list[str]:
    """Each item not done, with who labeled it: what a failure needs to be understood."""
    out = []
    names = {a.id: a.name for a in c.team}
    for it in c.final:
        if it["status"] == "done":
            continue
        with runtime.db.read() as session:
            rows = session.execute(
                select(col(Label.annotator_id), col(Assignment.tier), col(Annotator.status))
                .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
                .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
                .where(col(Label.item_id) == it["id"])
            ).all()
        labelers = [f"{names[a]} ({tier} work, {status})" for a, tier, status in rows]
        out.append(
            f"{it['external_id']}: {it['status']} in tier {it['tier']}, "
            f"{it['n_labels']} labels of {it.get('labels_needed', '?')} wanted, by "
            f"{', '.join(labelers) or 'nobody'}; {it['routing_reason']}"
        )
    return out


def test_campaign_beats_majority_vote(client, admin, jobs, runtime, monkeypatch):
    # The router draws gold from the OS so that annotators cannot predict it; here the draws
    # are seeded per annotator (see GoldDice), and with SimAnnotator's own streams every
    # annotator's gold record is fixed by the seed. It has to be: with ~20 gold answers each,
    # a random spammer still looks passable, or a 0.6 annotator looks like one, in a few
    # percent of campaigns, and a test must not fail on such luck.
    dice = GoldDice(SEED)
    monkeypatch.setattr("router.tasks.service._rng", dice)
    # Ids are random in production; equal priorities on a queue are served in id order, so
    # random ids would change who gets which item from run to run: seeded here.
    monkeypatch.setattr("router.db.models.secrets", SeededIds(SEED))
    c = run_campaign(client, admin, jobs, runtime, SEED, dice)
    _report(c, SEED)
    f = c.figures

    assert len(c.final) == N_ITEMS
    stuck = _unsettled(c, runtime)
    assert not stuck, f"{len(stuck)} items never settled ({c.rounds} rounds):\n" + "\n".join(stuck)

    spammer = c.annotators["spammer"]
    assert spammer["status"] == "suspended", spammer
    assert "gold" in (spammer["status_reason"] or ""), spammer
    # Nobody good is suspended. The rule keeps an annotator while the upper 95% bound of
    # their accuracy is at least 0.6, so one whose true accuracy is the bar itself (0.6) is
    # still suspended by bad luck in ~6% of campaigns (up to 2.5% at each check, checked at
    # every gold answer from the 12th on), one at 0.633 in ~3%, 0.667 ~1%, 0.7 ~0.7% and
    # better ones almost never (simulated with these rates). So at most one of the three
    # below 0.7 may be caught (the rule is entitled to doubt them), and nobody above.
    accuracy = {a.name: a.accuracy for a in c.team}
    good_suspended = [name for name in f["suspended"] if name != "spammer"]
    assert all((accuracy[name] or 0.0) < 0.7 for name in good_suspended), good_suspended
    assert len(good_suspended) <= 1, good_suspended

    assert f["router"] > f["majority"], f
    assert f["router"] > f["majority_expected"], f
    assert f["router"] >= 0.9, f
