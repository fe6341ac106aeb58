"""The demo's simulation (dataset, people) and baselines: pure, seeded, hand-checkable."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from router.demo.baselines import (
    CrowdLabels,
    baselines,
    majority_vote,
    spread,
)
from router.demo.crowd import Behaviour, answer, roster
from router.demo.dataset import CLASS_FREQ, CLASSES, NEIGHBOUR, make_dataset

K = len(CLASSES)


@pytest.fixture(name="data", scope="module")
def fx_data():
    return make_dataset(3000, 50, seed=3)


def test_the_dataset_is_seeded(data):
    again = make_dataset(3000, 50, seed=3)
    assert [i.as_ingest() for i in again.items[:50]] == [i.as_ingest() for i in data.items[:50]]
    other = make_dataset(3000, 50, seed=4)
    assert [i.truth for i in other.items] != [i.truth for i in data.items]
    assert data.truth_of("gold-00007") == (data.gold[7].truth, data.gold[7].kind)


def test_classes_are_imbalanced_as_configured(data):
    counts = Counter(i.truth for i in data.items)
    for c, share in enumerate(CLASS_FREQ):
        assert counts[c] / len(data.items) == pytest.approx(share, abs=0.025)


def test_every_prediction_is_valid_for_the_api(data):
    for item in data.items:
        preds = item.as_ingest()["predictions"]
        assert [p["model"] for p in preds] == ["large", "small", "prior"]
        for p in preds:
            probs = np.asarray(p["probs"])
            assert probs.shape == (K,)
            assert (probs >= 0).all()
            assert abs(probs.sum() - 1.0) <= 1e-6


def test_the_committee_is_miscalibrated_as_described(data):
    truth = np.array([i.truth for i in data.items])
    probs = np.stack([i.probs for i in data.items])  # (n, 3 models, K)
    accuracy = (probs.argmax(axis=2) == truth[:, None]).mean(axis=0)
    confidence = probs.max(axis=2).mean(axis=0)
    large, small, prior = 0, 1, 2
    assert confidence[large] > accuracy[large] + 0.05  # over-confident
    assert confidence[small] < accuracy[small] - 0.05  # under-confident
    # The prior-leaning model calls the most frequent class more often than it is true.
    calls = probs[:, prior].argmax(axis=1)
    assert (calls == 0).mean() > (truth == 0).mean()


def test_hard_items_split_the_committee_and_easy_ones_do_not(data):
    split = Counter()
    for item in data.items:
        calls = item.probs.argmax(axis=1).tolist()
        split[item.kind, len(set(calls))] += 1
        if item.kind == "hard":
            assert len(set(calls)) >= 2  # the prior model's lean may merge two calls
    hard = sum(v for (kind, _), v in split.items() if kind == "hard")
    easy = sum(v for (kind, _), v in split.items() if kind == "easy")
    assert split["hard", 3] / hard > 0.9
    assert split["easy", 1] / easy > 0.95


def _accuracy(who: Behaviour, kind: str = "ordinary", drifted: bool = False) -> float:
    hits = [
        answer(who, i % K, kind, f"x{i}", seed=1, drifted=drifted)[0] == i % K for i in range(4000)
    ]
    return float(np.mean(hits))


def test_answers_are_deterministic_and_match_the_behaviour():
    worker = Behaviour("w", "crowd", 0.8)
    assert answer(worker, 2, "ordinary", "a", 9) == answer(worker, 2, "ordinary", "a", 9)
    assert _accuracy(worker) == pytest.approx(0.8, abs=0.02)
    assert _accuracy(worker, "easy") == pytest.approx(0.88, abs=0.02)
    assert _accuracy(worker, "hard") == pytest.approx(0.55, abs=0.025)
    assert _accuracy(Behaviour("s", "crowd", None)) == pytest.approx(1 / K, abs=0.02)
    drifter = Behaviour("d", "crowd", 0.9, drifted_accuracy=0.3)
    assert _accuracy(drifter) == pytest.approx(0.9, abs=0.02)
    assert _accuracy(drifter, drifted=True) == pytest.approx(0.3, abs=0.025)


def test_mistakes_go_mostly_to_the_neighbour_class():
    worker = Behaviour("w", "crowd", 0.5)
    wrong = [g for i in range(4000) if (g := answer(worker, 0, "ordinary", f"y{i}", 1)[0]) != 0]
    # 60% to the neighbour, the other 40% spread over the 4 other classes (one is the neighbour).
    assert Counter(wrong)[NEIGHBOUR[0]] / len(wrong) == pytest.approx(0.6 + 0.4 / 4, abs=0.03)


def test_confidence_reports():
    sure = Behaviour("o", "crowd", 0.6, overconfident=True)
    confs = [answer(sure, 1, "ordinary", f"z{i}", 1)[1] for i in range(500)]
    assert min(confs) >= 0.93
    honest = Behaviour("h", "crowd", 0.7)
    confs = [answer(honest, 1, "ordinary", f"z{i}", 1)[1] for i in range(2000)]
    assert np.mean(confs) == pytest.approx(0.7, abs=0.01)
    # A drifting worker keeps reporting their old confidence.
    drifter = Behaviour("d", "crowd", 0.9, drifted_accuracy=0.3)
    confs = [answer(drifter, 1, "ordinary", f"z{i}", 1, drifted=True)[1] for i in range(2000)]
    assert np.mean(confs) == pytest.approx(0.9, abs=0.01)


def test_the_roster():
    people = roster(12, 2)
    assert len(people) == 14
    assert sum(p.accuracy is None for p in people) == 1  # the spammer
    assert sum(p.drifted_accuracy is not None for p in people) == 1
    assert sum(p.overconfident for p in people) == 2
    assert [p.tier for p in people].count("expert") == 2
    with pytest.raises(ValueError, match="at least 4"):
        roster(3)


def test_spread_is_as_even_as_the_budget_allows():
    rng = np.random.default_rng(0)
    counts = spread(7, 3, cap=5, rng=rng)
    assert counts.sum() == 7
    assert sorted(counts.tolist()) == [2, 2, 3]
    assert spread(100, 3, cap=5, rng=rng).tolist() == [5, 5, 5]  # capped
    assert spread(-1, 3, cap=5, rng=rng).tolist() == [0, 0, 0]


def test_majority_vote_by_hand():
    # item 0: 2, 2, 1 -> 2; item 1: 0 -> 0; item 2: 3, 4 tie -> 3 or 4; item 3: no labels.
    labels = CrowdLabels(
        item=np.array([0, 0, 0, 1, 2, 2]),
        worker=np.array([0, 1, 2, 0, 1, 2]),
        label=np.array([2, 2, 1, 0, 3, 4]),
    )
    seen = Counter()
    for seed in range(200):
        out = majority_vote(labels, 4, K, np.random.default_rng(seed))
        assert out[0] == 2
        assert out[1] == 0
        assert out[2] in (3, 4)
        seen[int(out[2])] += 1
    assert 60 < seen[3] < 140  # ties broken at random, both ways


def test_baselines_on_a_perfect_crowd_are_perfect_and_priced(data):
    items = data.items[:200]
    crowd = [Behaviour(f"c{i}", "crowd", 1.0) for i in range(6)]
    experts = [Behaviour("e", "expert", 1.0)]
    rows = {
        b.name: b
        for b in baselines(items, crowd + experts, 1, router_cost=700.0, router_expert_items=20)
    }
    # accuracy_on caps at 0.99 and hard items cost a perfect worker 0.25: not quite perfect.
    assert rows["majority vote, 3/item"].accuracy > 0.95
    assert rows["majority vote, 3/item"].cost == 600
    assert rows["Dawid-Skene, 5/item"].crowd_labels == 1000
    assert rows["Dawid-Skene, router's cost"].cost == 700
    escalation = rows["random expert escalation, router's cost"]
    assert escalation.expert_labels == 20
    assert escalation.crowd_labels == 500
    assert escalation.cost == 700


def test_baselines_rank_as_they_should(data):
    items = data.items[:600]
    rows = {
        b.name: b for b in baselines(items, roster(), 1, router_cost=2100.0, router_expert_items=40)
    }
    assert rows["majority vote, 1/item"].accuracy < rows["majority vote, 3/item"].accuracy
    assert rows["majority vote, 3/item"].accuracy < rows["majority vote, 5/item"].accuracy
    # Dawid-Skene learns the spammer and the weak workers away: better than voting.
    assert rows["Dawid-Skene, 5/item"].accuracy > rows["majority vote, 5/item"].accuracy
