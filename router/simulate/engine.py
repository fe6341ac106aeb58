"""The in-process campaign: the service's routing, gold and consensus rules over replayed answers.

One run, in rounds (a round is a batch of work the crowd does between two consensus passes):

1. Routing. Every non-gold item is scored and routed with ``router.routing.service.score_items``
   and ``router.routing.policy.route``, as the scoring job does. Without model predictions an
   item goes to the crowd at ``scoring.neutral_priority`` for ``labels.crowd_target`` labels.
2. Crowd work. Items of the crowd tier that want labels are served from the queue, highest
   priority first (ties in a seeded random order, as the queue's ties are arbitrary), at most
   ``round_labels`` labels a round. When the router wants a crowd label for item t, the next
   unused real answer for t (in a seeded random order) is served with its real worker as the
   annotator. An answer by a suspended worker is skipped unpaid (a suspended annotator is
   served no work); an item with no unused answers cannot get more crowd labels.
3. Gold. Each served crowd label is followed, with the configured gold probability of that
   worker (``gold.new_annotator_rate`` for their first ``gold.warmup`` gold answers, then
   ``gold.rate.crowd``), by one of the worker's own real answers on a gold item, the next
   unused one in a seeded random order (none if the worker has none left). Real workers thus
   get gold in proportion to their work, as the gold rate would give, and answer it as they
   really did. A gold answer updates the worker's record at once and the service's suspension
   rule (``router.quality.rules.suspension_verdict``) applies; a suspended worker's labels stop
   counting toward consensus. Onboarding (``gold.onboarding_tasks``) is not replayed.
4. Experts. The expert tier is one oracle labeler answering the truth with ``expert_accuracy``
   (else a uniformly drawn wrong class); it answers every item of its tier each round, and
   gets gold at ``gold.rate.expert`` (``new_annotator_rate`` during warm-up), answered by the
   same oracle. Experts do not take crowd work here.
5. Consensus. Every item that got a label, and every item stuck without answers, gets its
   posterior (``router.maths.posterior.item_posteriors`` over the service's item prior and the
   labelers' confusion matrices, see :meth:`Campaign.labeler_confusions`) and the service's
   settle decision (``router.routing.settle.decide``): done, one more label, or an expert. An
   item that wants crowd labels but has no unused answers left settles on the crowd consensus
   (unless the settle rule escalated it): who sees an expert stays the config's decision.
6. Relabel. Under ``consensus.relabel_after_refit``, after a round whose consensus refitted the
   matrices, every settled item with counted labels takes its posterior's most likely class
   under them, as the refit job's pass (``router.consensus.service.relabel_settled``) does.

Costs: crowd labels paid (every served answer, on non-gold items) x ``costs.crowd`` + expert
labels x ``costs.expert``. Gold answers are counted separately and not in the cost (they are
the price of measuring annotators, equal for every policy that uses gold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from router.consensus.model import item_priors, labeler_priors, refit_prior, smoothed_class_prior
from router.maths.annotator_model import (
    ConfusionModel,
    labeler_confusions,
    refit_counts_from_labels,
)
from router.maths.posterior import item_posteriors
from router.quality.rules import GoldRecord, suspension_verdict
from router.routing.config import RoutingConfig
from router.routing.policy import TIER_AUTO, TIER_CROWD, TIER_EXPERT, route
from router.routing.service import score_items
from router.routing.settle import ACTION_DONE, ACTION_MORE, decide
from router.simulate.replay import ReplayData, ReplayDraws

__all__ = ["Campaign", "CampaignResult", "SimulationSettings", "run_campaign"]


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """What the simulation adds to the routing config.

    Attributes:
        seed: Seeds every draw (gold items, answer order, gold serving, oracle, models).
        gold_fraction: Share of items that are gold (handed to the router, not scored).
        expert_accuracy: Probability that the expert oracle answers the truth.
        experts: False: no expert tier at all (crowd only).
        model_accuracy: Accuracy of synthetic, calibrated model predictions; None: none.
        confusion_model: Overrides the routing config's ``quality.confusion_model``
            (``symmetric`` or ``refit``); None: the config's.
        refit_every: Under ``refit``, rounds between two refits (the service's
            ``refit_interval_s``, counted in rounds).
        round_labels: Crowd labels served per round; None: ``max(20, N // 20)``.
        oracle: Also run the oracle (:mod:`router.simulate.oracle`) on the same draws.
    """

    seed: int = 0
    gold_fraction: float = 0.1
    expert_accuracy: float = 0.97
    experts: bool = True
    model_accuracy: float | None = None
    confusion_model: ConfusionModel | None = None
    refit_every: int = 1
    round_labels: int | None = None
    oracle: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.gold_fraction < 1.0:
            problems.append(f"the gold fraction must be in [0, 1), got {self.gold_fraction}")
        if not 0.0 <= self.expert_accuracy <= 1.0:
            problems.append(f"the expert accuracy must be in [0, 1], got {self.expert_accuracy}")
        if self.model_accuracy is not None and not 0.0 < self.model_accuracy < 1.0:
            problems.append(f"the model accuracy must be in (0, 1), got {self.model_accuracy}")
        if self.refit_every < 1:
            problems.append(f"refits must be at least 1 round apart, got {self.refit_every}")
        if self.round_labels is not None and self.round_labels < 1:
            problems.append(f"a round must serve at least 1 label, got {self.round_labels}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(slots=True)
class CampaignResult:
    """The outcome of one simulated campaign.

    Attributes:
        final: Final class per item (-1 for gold items), shape (N,).
        crowd_paid: Crowd labels served per item (suspended workers' included), shape (N,).
        expert_labels: Expert labels per item, shape (N,).
        settled_by: Items per way of settling: auto, crowd, cap or no answers left, expert.
        gold_labels_crowd: Gold answers served to crowd workers.
        gold_labels_expert: Gold answers served to the expert.
        skipped_answers: Answers not served because their worker was suspended.
        suspended: External ids of the workers suspended by the gold rule.
        rounds: Rounds run.
        crowd_answers: Indices (into the replay's answers) of the crowd labels served on
            non-gold items, in serving order.
        gold_answers: Indices of the answers served as gold.
    """

    final: NDArray[np.intp]
    crowd_paid: NDArray[np.int64]
    expert_labels: NDArray[np.int64]
    settled_by: dict[str, int]
    gold_labels_crowd: int
    gold_labels_expert: int
    skipped_answers: int
    suspended: list[str]
    rounds: int
    crowd_answers: NDArray[np.intp]
    gold_answers: NDArray[np.intp]


def synthetic_committees(
    truth: NDArray[np.intp], k: int, accuracy: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """One calibrated model's predictions with expected accuracy ``accuracy``, shape (N, 1, K).

    Each item's top probability ``q`` is drawn from ``1/K + (1 - 1/K) * Beta(4m, 4(1 - m))``
    with ``m`` chosen so that ``E[q] = accuracy``; the top class is the truth with probability
    ``q`` (else a uniformly drawn wrong class) and the other classes share ``1 - q``. So the
    model is calibrated and its confidence tells easy items from hard ones.
    """
    if not 1.0 / k < accuracy < 1.0:
        raise ValueError(f"the model accuracy must be in (1/K, 1) = ({1.0 / k:.3g}, 1)")
    n = truth.shape[0]
    m = (accuracy - 1.0 / k) / (1.0 - 1.0 / k)
    q = 1.0 / k + (1.0 - 1.0 / k) * np.asarray(rng.beta(4.0 * m, 4.0 * (1.0 - m), size=n))
    right = rng.random(n) < q
    wrong = (truth + rng.integers(1, k, size=n)) % k
    top = np.where(right, truth, wrong)
    probs = np.repeat(((1.0 - q) / (k - 1))[:, None], k, axis=1)
    probs[np.arange(n), top] = q
    return probs[:, None, :]


@dataclass
class Campaign:
    """The state of one simulated campaign; :func:`run_campaign` drives it."""

    data: ReplayData
    draws: ReplayDraws
    config: RoutingConfig
    settings: SimulationSettings
    rng: np.random.Generator
    # Labels on non-gold items: item, labeler (crowd worker, or the expert at index W), class.
    _items: list[int] = field(default_factory=list)
    _labelers: list[int] = field(default_factory=list)
    _classes: list[int] = field(default_factory=list)
    # Gold answers: gold item, labeler, class.
    _gold_items: list[int] = field(default_factory=list)
    _gold_labelers: list[int] = field(default_factory=list)
    _gold_classes: list[int] = field(default_factory=list)
    _crowd_answers: list[int] = field(default_factory=list)
    _gold_answer_ids: list[int] = field(default_factory=list)
    _last_confusions: NDArray[np.float64] | None = None
    _refit: NDArray[np.float64] | None = None
    _refit_round: int = 0
    _round: int = 0

    def __post_init__(self) -> None:
        d = self.data
        n, w = d.n_items, d.n_workers
        self.expert = w  # the oracle's labeler index
        self.n_gold = np.zeros(w + 1, dtype=np.int64)
        self.n_correct = np.zeros(w + 1, dtype=np.int64)
        self.active = np.ones(w + 1, dtype=np.bool_)
        self.next_answer = self.draws.start[:-1].copy()
        self.end = self.draws.start[1:]
        # Each worker's answers on gold items, in a random order, served as their gold.
        gold_ans = np.flatnonzero(self.draws.gold[d.item])
        gold_ans = gold_ans[self.rng.permutation(gold_ans.shape[0])]
        gold_ans = gold_ans[np.argsort(d.worker[gold_ans], kind="stable")]
        self.gold_pool = gold_ans
        self.gold_start = np.zeros(w + 1, dtype=np.intp)
        self.gold_start[1:] = np.cumsum(np.bincount(d.worker[gold_ans], minlength=w))
        self.gold_next = self.gold_start[:-1].copy()
        self.gold_item_ids = np.flatnonzero(self.draws.gold)
        self.open = ~self.draws.gold
        self.tier = np.full(n, TIER_CROWD, dtype="<U6")
        self.needed = np.zeros(n, dtype=np.int64)
        self.final = np.full(n, -1, dtype=np.intp)
        self.crowd_paid = np.zeros(n, dtype=np.int64)
        self.expert_labels = np.zeros(n, dtype=np.int64)
        self.settled_counts = np.zeros(d.k, dtype=np.float64)
        self.settled_by = {"auto": 0, "crowd": 0, "no answers left": 0, "expert": 0}
        self.tie_rank = self.rng.permutation(n)
        self.priority = np.zeros(n)
        self.committee_mean = np.zeros((n, d.k))
        self.has_committee = np.zeros(n, dtype=np.bool_)
        self.skipped = 0
        self.gold_crowd = 0
        self.gold_expert = 0
        self.suspended: list[str] = []

    # ----------------------------------------------------------------------------------------
    # Routing
    # ----------------------------------------------------------------------------------------

    def route_items(self) -> None:
        """Score and route every non-gold item once, as the scoring job does."""
        d, cfg = self.data, self.config
        ids = np.flatnonzero(~self.draws.gold)
        committees: list[NDArray[np.float64] | None] = [None] * ids.shape[0]
        if self.settings.model_accuracy is not None:
            stack = synthetic_committees(d.truth, d.k, self.settings.model_accuracy, self.rng)
            committees = [stack[i] for i in ids]
        scores = score_items(committees, cfg)
        decision = route(
            uncertainty=scores.uncertainty,
            disagreement=scores.disagreement,
            priority=scores.priority,
            has_predictions=scores.has_predictions,
            spot_check_draw=self.rng.random(ids.shape[0]),
            expert_open=0,
            config=self._config_for_experts(),
        )
        self.priority[ids] = scores.priority
        for j, i in enumerate(ids):
            pbar = scores.pbar[j]
            if pbar is not None:
                self.committee_mean[i] = pbar
                self.has_committee[i] = True
        self.tier[ids] = decision.tier
        self.needed[ids] = decision.labels_needed
        auto = ids[decision.settled]
        self.final[auto] = self.committee_mean[auto].argmax(axis=1)
        self.open[auto] = False
        self.settled_by["auto"] += int(auto.shape[0])
        self.settled_counts += np.bincount(self.final[auto], minlength=d.k)

    def _config_for_experts(self) -> RoutingConfig:
        if self.settings.experts:
            return self.config
        return self.config.model_copy(
            update={"experts": self.config.experts.model_copy(update={"capacity": 0})}
        )

    # ----------------------------------------------------------------------------------------
    # Work
    # ----------------------------------------------------------------------------------------

    def counted_crowd(self) -> NDArray[np.int64]:
        """Crowd labels per item that count toward consensus (active workers' only)."""
        n = self.data.n_items
        if not self._items:
            return np.zeros(n, dtype=np.int64)
        items = np.asarray(self._items)
        labelers = np.asarray(self._labelers)
        keep = (labelers != self.expert) & self.active[labelers]
        return np.bincount(items[keep], minlength=n).astype(np.int64)

    def serve_crowd(self, budget: int) -> NDArray[np.bool_]:
        """Serve up to ``budget`` crowd labels from the queue; returns the items labeled."""
        d = self.data
        touched = np.zeros(d.n_items, dtype=np.bool_)
        want = self.needed - self.counted_crowd()
        queue = np.flatnonzero(
            self.open & (self.tier == TIER_CROWD) & (want > 0) & (self.next_answer < self.end)
        )
        queue = queue[np.lexsort((self.tie_rank[queue], -self.priority[queue]))]
        for i in queue:
            got = 0
            while got < want[i] and self.next_answer[i] < self.end[i] and budget > 0:
                answer = int(self.draws.order[self.next_answer[i]])
                self.next_answer[i] += 1
                worker = int(d.worker[answer])
                if not self.active[worker]:
                    self.skipped += 1
                    continue
                self._items.append(int(i))
                self._labelers.append(worker)
                self._classes.append(int(d.label[answer]))
                self._crowd_answers.append(answer)
                self.crowd_paid[i] += 1
                touched[i] = True
                got += 1
                budget -= 1
                self._maybe_gold(worker)
            if budget <= 0:
                break
        return touched

    def _gold_rate(self, labeler: int, tier_rate: float) -> float:
        if self.n_gold[labeler] < self.config.gold.warmup:
            return self.config.gold.new_annotator_rate
        return tier_rate

    def _maybe_gold(self, worker: int) -> None:
        if self.rng.random() >= self._gold_rate(worker, self.config.gold.rate.crowd):
            return
        if self.gold_next[worker] >= self.gold_start[worker + 1]:
            return  # this worker answered no other gold item
        answer = int(self.gold_pool[self.gold_next[worker]])
        self.gold_next[worker] += 1
        item, given = int(self.data.item[answer]), int(self.data.label[answer])
        self._gold_answer_ids.append(answer)
        self.gold_crowd += 1
        self._record_gold(worker, item, given)

    def _record_gold(self, labeler: int, item: int, given: int) -> None:
        """As the label service does: the record updates at once, then the suspension rule."""
        self._gold_items.append(item)
        self._gold_labelers.append(labeler)
        self._gold_classes.append(given)
        self.n_gold[labeler] += 1
        self.n_correct[labeler] += int(given == self.data.truth[item])
        if not self.active[labeler]:
            return
        record = GoldRecord(
            n_gold=int(self.n_gold[labeler]), n_correct=int(self.n_correct[labeler])
        )
        suspend, _reason = suspension_verdict(record, self.config)
        if suspend:
            self.active[labeler] = False
            if labeler != self.expert:
                self.suspended.append(self.data.workers[labeler])

    def _oracle(self, truth: NDArray[np.intp]) -> NDArray[np.intp]:
        k = self.data.k
        n = truth.shape[0]
        right = self.rng.random(n) < self.settings.expert_accuracy
        wrong = (truth + self.rng.integers(1, k, size=n)) % k
        return np.where(right, truth, wrong).astype(np.intp)

    def serve_experts(self) -> NDArray[np.bool_]:
        """The oracle answers every expert-tier item that wants a label, and its gold."""
        touched = np.zeros(self.data.n_items, dtype=np.bool_)
        ids = np.flatnonzero(
            self.open & (self.tier == TIER_EXPERT) & (self.expert_labels < self.needed)
        )
        if not self.active[self.expert]:
            return touched
        for i, given in zip(ids, self._oracle(self.data.truth[ids]), strict=True):
            self._items.append(int(i))
            self._labelers.append(self.expert)
            self._classes.append(int(given))
            self.expert_labels[i] += 1
            touched[i] = True
            rate = self._gold_rate(self.expert, self.config.gold.rate.expert)
            if self.gold_item_ids.shape[0] and self.rng.random() < rate:
                gold_item = int(self.rng.choice(self.gold_item_ids))
                answer = int(self._oracle(self.data.truth[[gold_item]])[0])
                self.gold_expert += 1
                self._record_gold(self.expert, gold_item, answer)
        return touched

    # ----------------------------------------------------------------------------------------
    # Consensus
    # ----------------------------------------------------------------------------------------

    def labeler_confusions(self) -> NDArray[np.float64]:
        """The labelers' confusion matrices, shape (W + 1, K, K) (the expert last).

        Exactly as the consensus job chooses them: one pure ``labeler_confusions`` over the
        labelers' gold records and, under ``quality.confusion_model: refit``, the expected
        counts of the last refit (``refit_counts_from_labels``, the quality refit job's own
        function) over every label of the active labelers so far, gold answers included and
        gold items clamped. The service refits every ``quality.refit_interval_s``; here the
        refit runs every ``settings.refit_every`` rounds, warm-started from the previous one.
        """
        d, cfg = self.data, self.config
        model = self.settings.confusion_model or cfg.quality.confusion_model
        counts = None
        if model == "refit":
            if self._refit is None or self._round - self._refit_round >= self.settings.refit_every:
                self._refit = self._refit_counts()
                self._refit_round = self._round
            counts = self._refit
        is_expert = np.arange(d.n_workers + 1) == self.expert
        prior_alpha, prior_beta = labeler_priors(is_expert, cfg)
        return labeler_confusions(
            self.n_correct,
            self.n_gold,
            d.k,
            prior_alpha=prior_alpha,
            prior_beta=prior_beta,
            refit_counts=counts,
            model=model,
            prior_strength=cfg.quality.refit_prior_strength,
        )

    def _refit_counts(self) -> NDArray[np.float64]:
        d = self.data
        prior_alpha, prior_beta = refit_prior(self.config)
        items = np.asarray(self._items + self._gold_items, dtype=np.intp)
        labelers = np.asarray(self._labelers + self._gold_labelers, dtype=np.intp)
        classes = np.asarray(self._classes + self._gold_classes, dtype=np.intp)
        keep = self.active[labelers]  # the refit reads the labels of active annotators
        gold_items = np.unique(np.asarray(self._gold_items, dtype=np.intp))
        counts, model = refit_counts_from_labels(
            items[keep],
            labelers[keep],
            classes[keep],
            d.n_items,
            d.n_workers + 1,
            d.k,
            gold=(gold_items, d.truth[gold_items]),
            prior_alpha=prior_alpha,
            prior_beta=prior_beta,
            init_confusions=self._last_confusions,
        )
        self._last_confusions = model.confusions_
        return counts

    def posteriors(self, ids: NDArray[np.intp]) -> NDArray[np.float64]:
        """Posteriors of items ``ids``: the service's prior times the counted labels."""
        base = smoothed_class_prior(self.settled_counts)
        prior = item_priors(base, self.committee_mean[ids], self.has_committee[ids], self.config)
        if not self._items:
            return prior
        items = np.asarray(self._items, dtype=np.intp)
        labelers = np.asarray(self._labelers, dtype=np.intp)
        classes = np.asarray(self._classes, dtype=np.intp)
        local = np.full(self.data.n_items, -1, dtype=np.intp)
        local[ids] = np.arange(ids.shape[0])
        keep = (local[items] >= 0) & self.active[labelers]
        return item_posteriors(
            prior,
            local[items[keep]],
            classes[keep],
            self.labeler_confusions(),
            labelers[keep],
        )

    def settle(self, touched: NDArray[np.bool_]) -> int:
        """Run the settle decision on labeled and stuck items; returns items whose state moved."""
        counted = self.counted_crowd()
        exhausted = self.next_answer >= self.end
        stuck = self.open & (self.tier == TIER_CROWD) & exhausted & (counted < self.needed)
        ids = np.flatnonzero(self.open & (touched | stuck) & (self.tier != TIER_AUTO))
        if ids.shape[0] == 0:
            return 0
        cfg = self._config_for_experts()
        post = self.posteriors(ids)
        needed = np.where(stuck[ids], np.minimum(self.needed[ids], counted[ids]), self.needed[ids])
        expert_open = int(np.count_nonzero(self.open & (self.tier == TIER_EXPERT)))
        decision = decide(
            posterior=post,
            tier=self.tier[ids],
            crowd_labels=counted[ids],
            expert_labels=self.expert_labels[ids],
            labels_needed=needed,
            live_leases=np.zeros(ids.shape[0], dtype=np.int64),
            expert_open=expert_open,
            config=cfg,
        )
        action = decision.action.copy()
        new_tier = decision.tier.copy()
        new_needed = decision.labels_needed.copy()
        # No unused answers left: settled on the crowd consensus, unless the settle rule
        # escalated it (the config's disagreement rule and cap decide who sees an expert).
        blocked = exhausted[ids] & (new_tier == TIER_CROWD) & (action == ACTION_MORE)
        blocked |= stuck[ids] & (action == "wait")
        action[blocked] = ACTION_DONE
        self.settled_by["no answers left"] += int(np.count_nonzero(blocked))
        done = action == ACTION_DONE
        moved = action != "wait"
        done_ids = ids[done]
        self.final[done_ids] = post[done].argmax(axis=1)
        self.open[done_ids] = False
        self.settled_counts += np.bincount(self.final[done_ids], minlength=self.data.k)
        by_expert = done & (self.tier[ids] == TIER_EXPERT)
        self.settled_by["expert"] += int(np.count_nonzero(by_expert))
        self.settled_by["crowd"] += int(np.count_nonzero(done & ~by_expert & ~blocked))
        self.tier[ids] = new_tier
        self.needed[ids] = np.where(done, self.needed[ids], new_needed)
        return int(np.count_nonzero(moved))

    def relabel_settled(self) -> int:
        """After a refit, as the refit job does under ``consensus.relabel_after_refit``: every
        settled item with counted labels takes its posterior's most likely class under the new
        matrices (``router.consensus.service.relabel_settled``). Returns the items relabeled."""
        if not self._items:
            return 0
        d = self.data
        items = np.asarray(self._items, dtype=np.intp)
        labelers = np.asarray(self._labelers, dtype=np.intp)
        labeled = np.zeros(d.n_items, dtype=np.bool_)
        labeled[items[self.active[labelers]]] = True
        ids = np.flatnonzero(~self.open & ~self.draws.gold & labeled)
        if ids.shape[0] == 0:
            return 0
        new = self.posteriors(ids).argmax(axis=1)
        changed = new != self.final[ids]
        moved = ids[changed]
        # The class prior counts settled items by their current label, as the service's does.
        self.settled_counts -= np.bincount(self.final[moved], minlength=d.k)
        self.settled_counts += np.bincount(new[changed], minlength=d.k)
        self.final[moved] = new[changed]
        return int(moved.shape[0])

    def refitted_this_round(self) -> bool:
        """Whether the confusion matrices were refitted in the current round."""
        return self._refit is not None and self._refit_round == self._round

    def finish_open(self) -> None:
        """Settle whatever is still open on its current posterior (nothing more can happen)."""
        ids = np.flatnonzero(self.open)
        if ids.shape[0]:
            self.final[ids] = self.posteriors(ids).argmax(axis=1)
            self.open[ids] = False
            self.settled_by["no answers left"] += int(ids.shape[0])

    def result(self, rounds: int) -> CampaignResult:
        return CampaignResult(
            final=self.final,
            crowd_paid=self.crowd_paid,
            expert_labels=self.expert_labels,
            settled_by=dict(self.settled_by),
            gold_labels_crowd=self.gold_crowd,
            gold_labels_expert=self.gold_expert,
            skipped_answers=self.skipped,
            suspended=list(self.suspended),
            rounds=rounds,
            crowd_answers=np.asarray(self._crowd_answers, dtype=np.intp),
            gold_answers=np.asarray(self._gold_answer_ids, dtype=np.intp),
        )


def run_campaign(
    data: ReplayData,
    draws: ReplayDraws,
    config: RoutingConfig,
    settings: SimulationSettings,
    rng: np.random.Generator,
) -> CampaignResult:
    """Run one campaign until every item is settled or nothing more can happen."""
    campaign = Campaign(data=data, draws=draws, config=config, settings=settings, rng=rng)
    campaign.route_items()
    budget = settings.round_labels or max(20, data.n_items // 20)
    rounds = 0
    while campaign.open.any():
        rounds += 1
        campaign._round = rounds
        touched = campaign.serve_crowd(budget) | campaign.serve_experts()
        moved = campaign.settle(touched)
        if config.consensus.relabel_after_refit and campaign.refitted_this_round():
            campaign.relabel_settled()
        if not touched.any() and moved == 0:
            break
    campaign.finish_open()
    return campaign.result(rounds)
