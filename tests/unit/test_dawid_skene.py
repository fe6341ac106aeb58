"""Unit tests for router.maths.dawid_skene, against a direct loop, synthetic truth and crowd-kit."""

from __future__ import annotations

import csv
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from router.maths.dawid_skene import DawidSkene, confusion_from_gold
from router.maths.posterior import item_posteriors

CROWD = Path(__file__).resolve().parents[3] / "shared" / "data" / "crowd"


def _synthetic(
    seed: int, *, n: int = 3000, workers: int = 12, per_item: int = 4, k: int = 3
) -> dict[str, np.ndarray]:
    """Items with a known class, labeled by distinct workers drawn from known confusions."""
    rng = np.random.default_rng(seed)
    priors = rng.dirichlet(np.full(k, 4.0))
    truth = rng.choice(k, size=n, p=priors)
    accuracy = rng.uniform(0.35, 0.9, workers)
    conf = np.empty((workers, k, k))
    for w in range(workers):
        for t in range(k):
            conf[w, t] = np.insert(
                rng.dirichlet(np.ones(k - 1)) * (1 - accuracy[w]), t, accuracy[w]
            )
    who = np.argsort(rng.random((n, workers)), axis=1)[:, :per_item]
    items = np.repeat(np.arange(n), per_item)
    worker = who.ravel()
    u = rng.random(items.size)
    labels = np.minimum((u[:, None] > conf[worker, truth[items]].cumsum(axis=1)).sum(axis=1), k - 1)
    return {"truth": truth, "conf": conf, "items": items, "workers": worker, "labels": labels}


# --- confusion_from_gold ----------------------------------------------------------------------


def test_confusion_from_gold_by_hand():
    # Worker 0: true 0 -> said 0 twice and 1 once; true 1 -> said 1 once. Worker 1: no answers.
    conf = confusion_from_gold([0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], 2, 2, 1.0, 0.01)
    np.testing.assert_allclose(
        conf[0], [[3 / 4.01, 1.01 / 4.01], [0.01 / 2.01, 2 / 2.01]], rtol=1e-14
    )
    np.testing.assert_allclose(conf[1], [[1 / 1.01, 0.01 / 1.01], [0.01 / 1.01, 1 / 1.01]])
    np.testing.assert_allclose(conf.sum(axis=2), 1.0, rtol=1e-15)


def test_confusion_from_gold_without_prior_is_the_empirical_rate_and_empty_rows_are_uniform():
    conf = confusion_from_gold([0, 0, 0], [1, 1, 1], [1, 2, 1], 1, 3, 0.0, 0.0)
    np.testing.assert_allclose(conf[0], [[1 / 3] * 3, [0, 2 / 3, 1 / 3], [1 / 3] * 3])


@pytest.mark.parametrize(
    ("args"),
    [
        ([0], [0], [2], 1, 2, 1.0, 0.0),
        ([1], [0], [0], 1, 2, 1.0, 0.0),
        ([0, 0], [0], [0], 1, 2, 1.0, 0.0),
        ([0], [0], [0], 1, 1, 1.0, 0.0),
        ([0], [0], [0], 1, 2, -1.0, 0.0),
        ([0], [0], [0], 1, 2, 1.0, math.inf),
    ],
)
def test_confusion_from_gold_rejects_bad_input(args):
    with pytest.raises(ValueError):
        confusion_from_gold(*args)


# --- one EM iteration against a direct loop ---------------------------------------------------


def _direct_one_iteration(items, workers, labels, n, w, k, prior_diag, prior_off, gold):
    """Majority vote, M step, E step, M step: written out with loops over labels."""
    post = np.zeros((n, k))
    for i, y in zip(items, labels, strict=True):
        post[i, y] += 1
    for i in range(n):
        post[i] = post[i] / post[i].sum() if post[i].sum() else 1.0 / k
    for i, c in gold.items():
        post[i] = np.eye(k)[c]

    def m_step(post):
        counts = np.full((w, k, k), prior_off) + np.eye(k) * (prior_diag - prior_off)
        for i, a, y in zip(items, workers, labels, strict=True):
            counts[a, :, y] += post[i]
        return counts / counts.sum(axis=2, keepdims=True), post.mean(axis=0)

    conf, priors = m_step(post)
    log_post = np.tile(np.log(priors), (n, 1))
    for i, a, y in zip(items, workers, labels, strict=True):
        log_post[i] += np.log(conf[a, :, y])
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    for i, c in gold.items():
        post[i] = np.eye(k)[c]
    conf, priors = m_step(post)
    return post, conf, priors


@pytest.mark.parametrize("seed", range(4))
def test_one_iteration_equals_a_direct_loop(seed):
    rng = np.random.default_rng(seed)
    n, w, k, n_labels = 30, 5, 3, 90
    items = rng.integers(0, n - 2, n_labels)  # the last two items have no labels
    workers = rng.integers(0, w - 1, n_labels)  # the last worker has none
    labels = rng.integers(0, k, n_labels)
    gold = {0: 2, 5: 1, n - 1: 0}
    expected_post, expected_conf, expected_priors = _direct_one_iteration(
        items, workers, labels, n, w, k, 1.0, 0.01, gold
    )
    ds = DawidSkene(n_iter=1).fit(items, workers, labels, n, w, k, gold=gold)
    assert ds.n_iter_ == 1
    np.testing.assert_allclose(ds.posteriors_, expected_post, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ds.confusions_, expected_conf, rtol=1e-12)
    np.testing.assert_allclose(ds.priors_, expected_priors, rtol=1e-12)
    np.testing.assert_array_equal(ds.labels_, expected_post.argmax(axis=1))


def test_zero_iterations_keep_the_majority_vote():
    ds = DawidSkene(n_iter=0).fit([0, 0, 0, 1], [0, 1, 2, 0], [1, 1, 0, 0], 3, 3, 2)
    np.testing.assert_allclose(ds.posteriors_, [[1 / 3, 2 / 3], [1, 0], [0.5, 0.5]])
    assert ds.n_iter_ == 0
    assert math.isnan(ds.log_likelihood_)


# --- behaviour ----------------------------------------------------------------------------------


def test_recovers_known_confusions_on_synthetic_data():
    data = _synthetic(0, n=6000, workers=10, per_item=5)
    ds = DawidSkene().fit(data["items"], data["workers"], data["labels"], 6000, 10, 3)
    # Each worker has ~3000 labels, ~1000 per true class: sampling error ~0.015 per entry.
    assert np.abs(ds.confusions_ - data["conf"]).max() < 0.06
    truth_priors = np.bincount(data["truth"], minlength=3) / 6000
    np.testing.assert_allclose(ds.priors_, truth_priors, atol=0.02)
    np.testing.assert_allclose(ds.confusions_.sum(axis=2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ds.posteriors_.sum(axis=1), 1.0, rtol=1e-12)
    votes = np.zeros((6000, 3))
    np.add.at(votes, (data["items"], data["labels"]), 1.0)
    majority = (votes.argmax(axis=1) == data["truth"]).mean()
    assert (ds.labels_ == data["truth"]).mean() > majority + 0.01


def test_fixed_point_posteriors_match_item_posteriors():
    data = _synthetic(1)
    ds = DawidSkene(tol=1e-12, n_iter=500).fit(
        data["items"], data["workers"], data["labels"], 3000, 12, 3
    )
    assert ds.n_iter_ < 500
    prior = np.tile(ds.priors_, (3000, 1))
    post = item_posteriors(prior, data["items"], data["labels"], ds.confusions_, data["workers"])
    np.testing.assert_allclose(ds.posteriors_, post, atol=1e-6)


def test_maximum_likelihood_em_never_lowers_the_log_likelihood():
    data = _synthetic(2, n=500)
    lls = [
        DawidSkene(n_iter=it, tol=0.0, prior_diag=0.0, prior_off=0.0)
        .fit(data["items"], data["workers"], data["labels"], 500, 12, 3)
        .log_likelihood_
        for it in range(1, 15)
    ]
    assert np.all(np.diff(lls) >= -1e-9 * abs(lls[0]))
    assert lls[-1] > lls[0]


def test_label_order_does_not_matter():
    data = _synthetic(3, n=400)
    perm = np.random.default_rng(0).permutation(data["items"].size)
    a = DawidSkene().fit(data["items"], data["workers"], data["labels"], 400, 12, 3)
    b = DawidSkene().fit(
        data["items"][perm], data["workers"][perm], data["labels"][perm], 400, 12, 3
    )
    np.testing.assert_allclose(a.posteriors_, b.posteriors_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.confusions_, b.confusions_, rtol=1e-9)


def test_gold_items_are_clamped_even_against_every_label():
    # Three workers all say 0 on item 0, whose gold class is 1.
    items, workers, labels = [0, 0, 0, 1, 1, 2], [0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 0]
    for gold in ({0: 1}, (np.array([0, 0]), np.array([1, 1]))):
        ds = DawidSkene().fit(items, workers, labels, 3, 3, 2, gold=gold)
        np.testing.assert_array_equal(ds.posteriors_[0], [0.0, 1.0])
        assert ds.labels_[0] == 1


def test_gold_forms_agree_and_conflicting_gold_is_rejected():
    data = _synthetic(4, n=300)
    args = (data["items"], data["workers"], data["labels"], 300, 12, 3)
    g = np.arange(0, 300, 10)
    a = DawidSkene().fit(*args, gold=dict(zip(g.tolist(), data["truth"][g].tolist(), strict=True)))
    b = DawidSkene().fit(*args, gold=(g, data["truth"][g]))
    np.testing.assert_array_equal(a.posteriors_, b.posteriors_)
    with pytest.raises(ValueError, match="two different gold classes"):
        DawidSkene().fit(*args, gold=(np.array([1, 1]), np.array([0, 1])))


def test_gold_helps_on_synthetic_data():
    """Where the model holds, 10% gold makes the other 90% at least as accurate, on average."""
    gains = []
    for seed in range(8):
        data = _synthetic(10 + seed, n=2000, workers=20, per_item=3)
        rng = np.random.default_rng(seed)
        gold = rng.choice(2000, 200, replace=False)
        rest = np.setdiff1d(np.arange(2000), gold)
        args = (data["items"], data["workers"], data["labels"], 2000, 20, 3)
        without = DawidSkene().fit(*args)
        with_gold = DawidSkene().fit(*args, gold=(gold, data["truth"][gold]))
        truth = data["truth"][rest]
        gains.append(
            (with_gold.labels_[rest] == truth).mean() - (without.labels_[rest] == truth).mean()
        )
    assert np.mean(gains) > 0


def test_init_confusions_from_gold_start_em_there():
    data = _synthetic(5, n=1500)
    args = (data["items"], data["workers"], data["labels"], 1500, 12, 3)
    g = np.arange(0, 1500, 5)
    gold_mask = np.isin(data["items"], g)
    init = confusion_from_gold(
        data["workers"][gold_mask],
        data["truth"][data["items"][gold_mask]],
        data["labels"][gold_mask],
        12,
        3,
    )
    one = DawidSkene(n_iter=1).fit(*args, init_confusions=init)
    # The first E step uses init: compare with item_posteriors under the same confusions and
    # the majority-vote class priors.
    votes = np.zeros((1500, 3))
    np.add.at(votes, (data["items"], data["labels"]), 1.0)
    priors = (votes / votes.sum(axis=1, keepdims=True)).mean(axis=0)
    expected = item_posteriors(
        np.tile(priors, (1500, 1)), data["items"], data["labels"], init, data["workers"]
    )
    np.testing.assert_allclose(one.posteriors_, expected, rtol=1e-10, atol=1e-13)
    full = DawidSkene().fit(*args, init_confusions=init)
    assert (full.labels_ == data["truth"]).mean() > 0.8
    with pytest.raises(ValueError, match="init_confusions"):
        DawidSkene().fit(*args, init_confusions=init[:, :2])


def test_items_and_workers_without_labels():
    # posteriors_ come from the last E step, priors_ from the M step after it: equal once EM has
    # converged.
    ds = DawidSkene(tol=1e-13, n_iter=10_000).fit([0, 0, 1], [0, 1, 0], [1, 1, 0], 4, 3, 2)
    np.testing.assert_allclose(ds.posteriors_[2], ds.priors_)
    np.testing.assert_allclose(ds.posteriors_[3], ds.priors_)
    # Worker 2 never labeled: the prior's mean, diag 1 / 1.01.
    np.testing.assert_allclose(
        ds.confusions_[2], [[1 / 1.01, 0.01 / 1.01], [0.01 / 1.01, 1 / 1.01]]
    )
    empty = DawidSkene().fit([], [], [], 0, 0, 2)
    assert empty.posteriors_.shape == (0, 2)
    assert empty.confusions_.shape == (0, 2, 2)


def test_many_labels_do_not_underflow():
    # 3000 labels on one item: the product of likelihoods is far below the smallest float.
    n_labels = 3000
    items = np.zeros(n_labels, dtype=int)
    workers = np.arange(n_labels) % 30
    labels = (np.arange(n_labels) % 7 != 0).astype(int)
    ds = DawidSkene().fit(items, workers, labels, 1, 30, 2)
    assert np.all(np.isfinite(ds.posteriors_))
    assert np.isfinite(ds.log_likelihood_)
    assert ds.labels_[0] == 1


@pytest.mark.parametrize(
    ("params", "fit_args"),
    [
        ({"n_iter": -1}, ([0], [0], [0], 1, 1, 2)),
        ({"tol": -1e-3}, ([0], [0], [0], 1, 1, 2)),
        ({"prior_diag": -1.0}, ([0], [0], [0], 1, 1, 2)),
        ({}, ([0], [0], [0], 1, 1, 1)),
        ({}, ([0], [0], [2], 1, 1, 2)),
        ({}, ([0], [1], [0], 1, 1, 2)),
        ({}, ([0, 0], [0], [0], 1, 1, 2)),
        ({}, ([0.0], [0], [0], 1, 1, 2)),
    ],
)
def test_fit_rejects_bad_input(params, fit_args):
    with pytest.raises(ValueError):
        DawidSkene(**params).fit(*fit_args)


# --- real data: crowd-kit and gold --------------------------------------------------------------


@cache
def _dataset(name: str) -> dict[str, np.ndarray]:
    folder = CROWD / name
    if not (folder / "answers.csv").exists() or not (folder / "gold.csv").exists():
        pytest.skip(f"{folder} is absent (real data live in ../shared/data, see DESIGN.md)")
    with (folder / "answers.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (folder / "gold.csv").open(newline="") as f:
        gold = {r["task"]: int(r["gold"]) for r in csv.DictReader(f)}
    task_names, items = np.unique([r["task"] for r in rows], return_inverse=True)
    worker_names, workers = np.unique([r["worker"] for r in rows], return_inverse=True)
    labels = np.array([int(r["label"]) for r in rows])
    truth = np.array([gold.get(t, -1) for t in task_names])
    return {
        "task_names": task_names,
        "worker_names": worker_names,
        "items": items,
        "workers": workers,
        "labels": labels,
        "truth": truth,
        "k": np.array(max(labels.max(), truth.max()) + 1),
    }


def _fit(data: dict[str, np.ndarray], **kwargs) -> DawidSkene:
    return DawidSkene().fit(
        data["items"],
        data["workers"],
        data["labels"],
        data["task_names"].size,
        data["worker_names"].size,
        int(data["k"]),
        **kwargs,
    )


def _crowdkit_accuracy(data: dict[str, np.ndarray], tol: float) -> float:
    aggregation = pytest.importorskip("crowdkit.aggregation", reason="crowd-kit is not installed")
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    df = pd.DataFrame(
        {
            "task": data["task_names"][data["items"]],
            "worker": data["worker_names"][data["workers"]],
            "label": data["labels"],
        }
    )
    labels = aggregation.DawidSkene(n_iter=100, tol=tol).fit(df).labels_
    known = data["truth"] >= 0
    predicted = labels.reindex(data["task_names"][known]).to_numpy()
    return float((predicted == data["truth"][known]).mean())


def _accuracy(labels: np.ndarray, data: dict[str, np.ndarray], subset=None) -> float:
    known = np.flatnonzero(data["truth"] >= 0) if subset is None else subset
    return float((labels[known] == data["truth"][known]).mean())


@pytest.mark.filterwarnings("ignore::Warning:crowdkit.*")
@pytest.mark.parametrize("name", ["product", "bluebirds"])
def test_accuracy_matches_crowdkit_dawid_skene(name):
    """Within half a point of crowd-kit's DawidSkene(n_iter=100) on the same labels.

    crowd-kit stops when its evidence lower bound stops rising; on bluebirds it falls after the
    first iteration, so crowd-kit's default stops at iteration 2 (accuracy 0.889) short of its
    own fixed point (0.898 when made to run all 100 iterations with tol=-inf). We compare with
    crowd-kit run to its fixed point, and check we are not below its default either.
    """
    data = _dataset(name)
    ours = _accuracy(_fit(data).labels_, data)
    theirs_full = _crowdkit_accuracy(data, tol=-math.inf)
    assert abs(ours - theirs_full) <= 0.005, (ours, theirs_full)
    if name == "bluebirds":  # cheap; on product both crowd-kit runs agree (0.9397)
        assert ours >= _crowdkit_accuracy(data, tol=1e-5) - 0.005


def _gold_split(data: dict[str, np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
    known = np.flatnonzero(data["truth"] >= 0)
    gold = np.random.default_rng(seed).choice(known, size=round(0.1 * known.size), replace=False)
    return gold, np.setdiff1d(known, gold)


@pytest.mark.parametrize("name", ["product", "bluebirds"])
def test_ten_percent_gold_on_a_seeded_split_is_at_least_as_accurate(name):
    """10% of the items given as gold (seed 0); accuracy on the other 90%.

    This is one split. Across splits the effect of clamping gold on these real data is small
    and goes both ways (see the next test and the report in bench/quality.py).
    """
    data = _dataset(name)
    gold, rest = _gold_split(data, 0)
    without = _accuracy(_fit(data).labels_, data, rest)
    with_gold = _accuracy(_fit(data, gold=(gold, data["truth"][gold])).labels_, data, rest)
    assert with_gold >= without, (with_gold, without)


@pytest.mark.parametrize("name", ["product", "bluebirds"])
def test_ten_percent_gold_costs_at_most_half_a_point_on_average_over_splits(name):
    """Over 10 seeded splits, clamping 10% gold changes accuracy on the rest by > -0.5 points.

    DS with clamped gold is not uniformly better on real data: on product (8,315 items) the
    per-split change is between about -5 and +10 items, on bluebirds (108 items) -1 to +1 item.
    Gold moves the fitted confusions towards the true ones, but the model (no item difficulty)
    is misspecified, so better parameters need not give a better argmax on every item.
    """
    data = _dataset(name)
    without = _fit(data).labels_
    changes = []
    for seed in range(10):
        gold, rest = _gold_split(data, seed)
        with_gold = _fit(data, gold=(gold, data["truth"][gold])).labels_
        changes.append(_accuracy(with_gold, data, rest) - _accuracy(without, data, rest))
    assert np.mean(changes) > -0.005, changes
