"""HTTP: GET /v1/projects/{pid}/metrics, the project's read-out (ops, admin)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.params import FromPath

from router.deps import PrincipalDep, RuntimeDep
from router.readouts import service

__all__ = ["ReadoutController"]

_DESCRIPTION = f"""\
One project's read-out, computed on request (reads only):

- `items`: ordinary items by `status` and by `tier` (`unrouted` while not yet routed), their
  `total`, and `gold`, the number of gold items.
- `queues`: items with free label slots in each tier queue (`crowd`, `expert`).
- `labels`: labels stored, `total` and `by_tier` of their assignment (`crowd`, `expert`,
  `gold`); `cost` = crowd labels x `costs.crowd` + expert labels x `costs.expert` of the routing
  config in force; `gold_cost_at_annotator_tier` prices each gold answer at the cost of the
  answering annotator's current tier (`gold_by_annotator_tier`); `total_cost` is their sum.
- `agreement`: over the labels that active annotators gave ordinary items with at least two such
  labels: Krippendorff's alpha (`level` nominal for categorical schemas, ordinal for ordinal
  ones) with a 95% percentile bootstrap interval ({service.N_BOOT} replicates resampling items,
  seeded), Fleiss' kappa over the items having the most common number of labels
  (`fleiss_labels_per_item`, `fleiss_items`), and the mean pairwise Cohen's kappa (quadratic
  weights for ordinal schemas). Null without enough data; 1.0 with `unanimous` true when every
  such label is the same.
- `experts`: `open`, the items the expert tier holds now (routed there, not settled), against
  `capacity` of the routing config in force.
- `gold_coverage`: `annotators`, how many have at least one gold answer (`with_gold`),
  `mean_gold_per_annotator` (null with no annotators), and the external ids of annotators whose
  gold is exhausted (`gold_exhausted`).
- `config_version`: the routing config version in force.
- `agreement_by_rubric`: the `agreement` statistics again, one entry per `rubric_version` the
  labels were given under, over the labels of that version only (sorted by version).
- `quality_fit`: the last Dawid-Skene refit of the annotators' confusion matrices (`fitted_at`,
  `n_labels`, `n_items`, `n_gold_items`, `n_annotators`, `iterations`, `log_likelihood`,
  `seconds`), or null before the first (`POST .../quality/refit`, or the scheduler).
"""


class ReadoutController(Controller):
    path = "/v1"
    tags = ("read-outs",)

    @get(
        "/projects/{pid:str}/metrics",
        sync_to_thread=True,
        summary="Counts, queue depths, cost, agreement and gold coverage (ops, admin)",
        description=_DESCRIPTION,
    )
    def project_metrics(
        self, pid: FromPath[str], runtime: RuntimeDep, principal: PrincipalDep
    ) -> dict[str, Any]:
        return service.project_metrics(runtime.db, runtime.assignments, principal, pid)
