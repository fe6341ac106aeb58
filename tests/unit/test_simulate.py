"""labelrouter simulate on tiny synthetic replays whose outcomes can be checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.consensus.model import (
    item_priors,
    labeler_priors,
    refit_prior,
    smoothed_class_prior,
)
from router.maths.annotator_model import labeler_confusions, refit_counts_from_labels
from router.maths.dawid_skene import DawidSkene
from router.maths.posterior import accuracy_posterior, symmetric_confusion
from router.routing.config import load_default_config, merge_overrides
from router.simulate.baselines import majority_vote
from router.simulate.engine import (
    Campaign,
    SimulationSettings,
    run_campaign,
    synthetic_committees,
)
from router.simulate.replay import ReplayData, ReplayInputError, draw_replay, load_replay
from router.simulate.report import simulate

CROWD_ONE_LABEL = {"labels": {"crowd_target": 1}, "consensus": {"min_labels": 1}}


def _write(tmp_path: Path, answers: list[tuple[str, str, int]], truth: dict[str, int]) -> Path:
    (tmp_path / "answers.csv").write_text(
        "task,worker,label\n" + "".join(f"{t},{w},{lb}\n" for t, w, lb in answers)
    )
    (tmp_path / "gold.csv").write_text(
        "task,gold\n" + "".join(f"{t},{g}\n" for t, g in truth.items())
    )
    return tmp_path


def _crowd(
    n_items: int,
    accuracies: list[float],
    seed: int = 7,
    k: int = 2,
) -> ReplayData:
    """Every worker answers every item, right with their accuracy, else a random wrong class."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, size=n_items)
    items, workers, labels = [], [], []
    for w, acc in enumerate(accuracies):
        right = rng.random(n_items) < acc
        wrong = (truth + rng.integers(1, k, size=n_items)) % k
        items.append(np.arange(n_items))
        workers.append(np.full(n_items, w))
        labels.append(np.where(right, truth, wrong))
    return ReplayData(
        tasks=[f"t{i}" for i in range(n_items)],
        workers=[f"w{w}" for w in range(len(accuracies))],
        k=k,
        item=np.concatenate(items).astype(np.intp),
        worker=np.concatenate(workers).astype(np.intp),
        label=np.concatenate(labels).astype(np.intp),
        truth=truth.astype(np.intp),
    )


def _config(overrides: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return merge_overrides(load_default_config(), overrides or {})


def test_load_replay_indexes_answers_and_drops_tasks_without_truth(tmp_path: Path) -> None:
    d = _write(
        tmp_path,
        [("a", "x", 0), ("a", "y", 1), ("b", "x", 1), ("c", "y", 2)],
        {"a": 0, "b": 1},
    )
    data = load_replay(d / "answers.csv", d / "gold.csv")
    assert data.tasks == ["a", "b"]
    assert data.workers == ["x", "y"]
    assert data.k == 2
    assert data.item.tolist() == [0, 0, 1]
    assert data.worker.tolist() == [0, 1, 0]
    assert data.label.tolist() == [0, 1, 1]
    assert data.truth.tolist() == [0, 1]
    assert data.dropped_tasks == 1


def test_load_replay_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "answers.csv").write_text("task,worker,label\na,x,cat\na,x,1\na,x,0\nb,y\n")
    (tmp_path / "gold.csv").write_text("item,truth\n")
    with pytest.raises(ReplayInputError) as err:
        load_replay(tmp_path / "answers.csv", tmp_path / "gold.csv")
    text = str(err.value)
    assert "header task,gold" in text
    assert "label 'cat' is not a class index" in text
    assert "worker 'x' answers task 'a' again" in text
    assert "expected 3 fields" in text
    with pytest.raises(ReplayInputError, match="file not found"):
        load_replay(tmp_path / "missing.csv", tmp_path / "gold.csv")


def test_draws_pick_the_gold_fraction_and_keep_every_answer_once() -> None:
    data = _crowd(50, [0.8, 0.7, 0.9])
    draws = draw_replay(data, 0.1, np.random.default_rng(1))
    assert int(draws.gold.sum()) == 5
    assert sorted(draws.order.tolist()) == list(range(150))
    for i in range(50):
        assert set(data.item[draws.answers_of(i)].tolist()) == {i}
    first = draws.first_k(2)
    assert first.shape[0] == 100
    assert np.all(np.bincount(data.item[first], minlength=50) == 2)


def test_oracle_workers_give_perfect_accuracy_with_one_label_each() -> None:
    data = _crowd(60, [1.0, 1.0, 1.0])
    config = _config({**CROWD_ONE_LABEL, "consensus": {"min_labels": 1, "stop_confidence": 0.5}})
    report = simulate(data, config, SimulationSettings(seed=3, experts=False))
    router = report.row("router")
    assert router.accuracy == 1.0
    assert router.crowd_labels == report.scored_items  # one label settles every item
    assert router.expert_labels == 0


def test_a_bad_worker_lowers_accuracy_and_is_suspended_by_gold() -> None:
    good = simulate(
        _crowd(300, [0.95, 0.95, 0.95]), _config(), SimulationSettings(seed=1, experts=False)
    )
    # Worker 3 always gives the wrong class.
    data = _crowd(300, [0.95, 0.95, 0.95, 0.0])
    spam_labels = data.label
    spammy = ReplayData(
        tasks=data.tasks,
        workers=data.workers,
        k=2,
        item=data.item,
        worker=data.worker,
        label=spam_labels,
        truth=data.truth,
    )
    config = _config({"gold": {"rate": {"crowd": 0.5, "expert": 0.05}, "new_annotator_rate": 1.0}})
    report = simulate(spammy, config, SimulationSettings(seed=1, experts=False, gold_fraction=0.3))
    assert "w3" in report.router["suspended_workers"]
    assert report.router["skipped_answers"] > 0
    # Majority vote over the first answers, with the spammer's among them, suffers more.
    assert report.row("majority vote", 1).accuracy < good.row("majority vote", 1).accuracy
    assert report.row("router").accuracy >= 0.95


def test_runs_are_reproducible_under_a_seed_and_differ_across_seeds() -> None:
    data = _crowd(120, [0.9, 0.7, 0.6, 0.8])
    a = simulate(data, _config(), SimulationSettings(seed=5))
    b = simulate(data, _config(), SimulationSettings(seed=5))
    c = simulate(data, _config(), SimulationSettings(seed=6))
    assert a.as_dict() == b.as_dict()
    assert a.as_dict() != c.as_dict()


def test_answers_are_never_reused_and_items_without_answers_stop() -> None:
    data = _crowd(80, [0.6, 0.55, 0.65])  # poor workers: items want more than 3 labels
    config = _config({"consensus": {"stop_confidence": 0.999}})
    settings = SimulationSettings(seed=2, experts=False)
    rng = np.random.default_rng(settings.seed)
    draws = draw_replay(data, settings.gold_fraction, rng)
    result = run_campaign(data, draws, config, settings, rng)
    served = np.concatenate([result.crowd_answers, result.gold_answers])
    assert np.unique(served).shape[0] == served.shape[0]
    assert np.all(result.crowd_paid <= 3)
    assert result.settled_by["no answers left"] > 0
    scored = ~draws.gold
    assert np.all(result.final[scored] >= 0)  # every item settled
    assert np.all(result.final[draws.gold] == -1)
    # Each crowd answer was served on its own item: no answer of item t labels another item.
    assert np.all(
        result.crowd_paid[scored]
        == np.bincount(data.item[result.crowd_answers], minlength=80)[scored]
    )


def test_fixed_k_baselines_equal_direct_computations() -> None:
    data = _crowd(90, [0.9, 0.6, 0.7, 0.8, 0.55])
    settings = SimulationSettings(seed=4, experts=False)
    report = simulate(data, _config(), settings)
    rng = np.random.default_rng(settings.seed)
    draws = draw_replay(data, settings.gold_fraction, rng)
    _campaign_rng, baseline_rng = rng.spawn(2)
    scored = ~draws.gold
    for k in range(1, 6):
        answers = draws.first_k(k)
        on_scored = answers[scored[data.item[answers]]]
        mv = majority_vote(data.item[on_scored], data.label[on_scored], 90, 2, baseline_rng)
        gold_items = np.flatnonzero(draws.gold)
        ds = DawidSkene().fit(
            data.item[answers],
            data.worker[answers],
            data.label[answers],
            90,
            5,
            2,
            gold=(gold_items, data.truth[gold_items]),
        )
        truth = data.truth[scored]
        assert report.row("majority vote", k).accuracy == np.mean(mv[scored] == truth)
        assert report.row("dawid-skene", k).accuracy == np.mean(ds.labels_[scored] == truth)
        assert report.row("dawid-skene", k).crowd_labels == k * int(scored.sum())
    assert report.row("dawid-skene").k == 5  # "all labels" is the largest k


def test_majority_vote_breaks_ties_at_random() -> None:
    items = np.array([0, 0, 1, 1, 1], dtype=np.intp)
    labels = np.array([0, 1, 1, 1, 0], dtype=np.intp)
    seen = {int(majority_vote(items, labels, 2, 2, np.random.default_rng(s))[0]) for s in range(20)}
    assert seen == {0, 1}
    assert majority_vote(items, labels, 2, 2, np.random.default_rng(0))[1] == 1


def test_experts_fix_what_the_crowd_cannot_and_random_experts_cost_the_same() -> None:
    data = _crowd(200, [0.65, 0.6, 0.62])
    config = _config(
        {
            "consensus": {
                "stop_confidence": 0.99,
                "escalate_disagreement": 0.3,
                "min_labels_before_escalation": 2,
            }
        }
    )
    report = simulate(data, config, SimulationSettings(seed=8, expert_accuracy=1.0))
    router, rand = report.row("router"), report.row("random experts")
    assert router.expert_labels > 0
    assert (rand.crowd_labels, rand.expert_labels) == (router.crowd_labels, router.expert_labels)
    assert rand.cost_per_item == router.cost_per_item
    assert router.cost_per_item == pytest.approx(
        (router.crowd_labels + 10 * router.expert_labels) / report.scored_items
    )
    assert router.accuracy > report.row("dawid-skene").accuracy
    crowd_only = simulate(data, config, SimulationSettings(seed=8, experts=False))
    assert crowd_only.row("router").expert_labels == 0
    assert router.accuracy > crowd_only.row("router").accuracy


def test_synthetic_model_predictions_are_calibrated_and_auto_accept() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, size=20_000).astype(np.intp)
    probs = synthetic_committees(truth, 3, 0.8, rng)
    assert probs.shape == (20_000, 1, 3)
    assert np.allclose(probs.sum(axis=2), 1.0)
    assert np.mean(probs[:, 0].argmax(axis=1) == truth) == pytest.approx(0.8, abs=0.01)
    data = _crowd(200, [0.8, 0.8, 0.8])
    report = simulate(data, _config(), SimulationSettings(seed=1, model_accuracy=0.9))
    assert report.router["settled_by"]["auto"] > 0
    with pytest.raises(ValueError, match="model accuracy"):
        SimulationSettings(model_accuracy=1.5)


def test_consensus_model_pure_parts() -> None:
    assert smoothed_class_prior([3, 1]).tolist() == [4 / 6, 2 / 6]
    assert smoothed_class_prior([0, 0, 0]).tolist() == pytest.approx([1 / 3] * 3)
    config = _config()  # model_prior_weight 0.5
    prior = item_priors(
        np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.0, 0.0]]), np.array([True, False]), config
    )
    assert prior.tolist() == [[0.7, 0.3], [0.5, 0.5]]
    # Beta(4, 1) prior, 6 of 10 gold answers right: accuracy (4 + 6) / (5 + 10) = 2/3.
    conf = labeler_confusions([6], [10], 2, prior_alpha=4.0, prior_beta=1.0)
    mean, _, _ = accuracy_posterior([6], [10], 4.0, 1.0)
    assert conf == pytest.approx(symmetric_confusion(mean, 2))
    assert conf[0, 0, 0] == pytest.approx(2 / 3)


def test_labeler_priors_give_experts_their_own_prior_when_set() -> None:
    config = _config()
    alpha, beta = labeler_priors([False, True], config)
    shared = config.consensus.annotator_prior
    assert alpha.tolist() == [shared.alpha] * 2
    assert beta.tolist() == [shared.beta] * 2
    config = _config({"consensus": {"expert_prior": {"alpha": 19.0, "beta": 1.0}}})
    alpha, beta = labeler_priors([False, True, False], config)
    assert alpha.tolist() == [shared.alpha, 19.0, shared.alpha]
    assert beta.tolist() == [shared.beta, 1.0, shared.beta]
    # Three gold answers, all right: the crowd worker's weight stays near the shared prior's,
    # the expert's starts from 0.95.
    conf = labeler_confusions([3, 3], [3, 3], 2, prior_alpha=[4.0, 19.0], prior_beta=[1.0, 1.0])
    assert conf[:, 0, 0].tolist() == pytest.approx([7 / 8, 22 / 23])


def test_the_refit_prior_is_the_annotator_prior_unless_the_config_sets_one() -> None:
    assert refit_prior(_config()) == (4.0, 1.0)
    light = _config({"quality": {"refit_prior": {"alpha": 1.0, "beta": 0.01}}})
    assert refit_prior(light) == (1.0, 0.01)
    # Consensus weights and suspension keep the annotator prior.
    assert light.consensus.annotator_prior.alpha == 4.0


def test_the_replay_weighs_labels_with_the_services_function() -> None:
    # Campaign.labeler_confusions is labeler_confusions over the campaign's gold records and,
    # under refit, refit_counts_from_labels over its labels: checked on a campaign mid-run.
    data = _crowd(120, [0.9, 0.6, 0.7, 0.8, 0.55], k=3)
    light = {"alpha": 1.0, "beta": 0.01}
    for model, quality in (
        ("symmetric", {}),
        ("refit", {}),
        ("refit", {"refit_prior": light}),  # the refit's own prior, as the refit job reads it
    ):
        config = _config({"quality": {"confusion_model": model, **quality}})
        settings = SimulationSettings(seed=3, experts=True)
        rng = np.random.default_rng(3)
        campaign = Campaign(
            data=data,
            draws=draw_replay(data, settings.gold_fraction, rng),
            config=config,
            settings=settings,
            rng=rng,
        )
        campaign.route_items()
        campaign.serve_crowd(40)
        campaign.serve_experts()
        got = campaign.labeler_confusions()
        p = config.consensus.annotator_prior
        fit_alpha, fit_beta = (light["alpha"], light["beta"]) if quality else (p.alpha, p.beta)
        counts = None
        if model == "refit":
            items = np.asarray(campaign._items + campaign._gold_items)
            workers = np.asarray(campaign._labelers + campaign._gold_labelers)
            classes = np.asarray(campaign._classes + campaign._gold_classes)
            gold_items = np.unique(np.asarray(campaign._gold_items, dtype=np.intp))
            counts, _ = refit_counts_from_labels(
                items,
                workers,
                classes,
                data.n_items,
                data.n_workers + 1,
                data.k,
                gold=(gold_items, data.truth[gold_items]),
                prior_alpha=fit_alpha,
                prior_beta=fit_beta,
            )
        want = labeler_confusions(
            campaign.n_correct,
            campaign.n_gold,
            data.k,
            prior_alpha=p.alpha,
            prior_beta=p.beta,
            refit_counts=counts,
            model=model,  # type: ignore[arg-type]
            prior_strength=config.quality.refit_prior_strength,
        )
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_replay_relabels_settled_items_after_each_refit_when_configured() -> None:
    # consensus.relabel_after_refit: as the refit job's relabel pass, every settled item with
    # counted labels takes its posterior's class under the new matrices, and the class prior
    # counts the settled items by their current labels.
    data = _crowd(150, [0.9, 0.6, 0.7, 0.8, 0.55], k=3)
    config = _config(
        {
            "labels": {"crowd_target": 1},
            "consensus": {"min_labels": 1, "stop_confidence": 0.8, "relabel_after_refit": True},
        }
    )
    settings = SimulationSettings(seed=5, experts=False)
    rng = np.random.default_rng(5)
    campaign = Campaign(
        data=data,
        draws=draw_replay(data, settings.gold_fraction, rng),
        config=config,
        settings=settings,
        rng=rng,
    )
    campaign.route_items()
    relabeled = refits = 0
    for round_ in range(1, 40):
        campaign._round = round_
        campaign.settle(campaign.serve_crowd(20))
        if not campaign.refitted_this_round():
            continue
        refits += 1
        settled = np.flatnonzero(~campaign.open & ~campaign.draws.gold)
        counted = campaign.active[np.asarray(campaign._labelers)]
        labeled = np.isin(settled, np.asarray(campaign._items)[counted])
        want = campaign.final[settled].copy()
        want[labeled] = campaign.posteriors(settled[labeled]).argmax(axis=1)
        relabeled += campaign.relabel_settled()
        np.testing.assert_array_equal(campaign.final[settled], want)
        np.testing.assert_array_equal(
            campaign.settled_counts, np.bincount(campaign.final[settled], minlength=data.k)
        )
    assert refits > 5
    assert relabeled > 0
