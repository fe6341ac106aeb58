"""`labelrouter demo`: a whole labeling campaign, simulated, over the real service."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from router.client import LabelRouter
from router.demo.baselines import baselines
from router.demo.campaign import run_campaign
from router.demo.crowd import Behaviour, roster
from router.demo.dataset import CLASSES, Dataset, make_dataset
from router.demo.report import DemoReport, gather, render
from router.demo.service import DemoService

__all__ = ["DemoOptions", "demo_routing", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    items: int = 800
    seed: int = 1
    budget: float | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    var_dir: Path = Path("var/demo")
    crowd: int = 12
    experts: int = 2
    exit: bool = False


def demo_routing(n_items: int) -> dict[str, Any]:
    """The demo project's overrides of config/routing.yaml, and why."""
    return {
        # The synthetic committee splits three ways on hard items (priority ~0.66-0.7) and
        # ordinary ones stay under ~0.62: the line between them.
        "thresholds": {"expert_min_priority": 0.64},
        # Scarce experts: the tier holds about one item in twenty at once.
        "experts": {"capacity": max(10, n_items // 20)},
        # Gold denser than the default, so that drift (the last 15 gold answers against the
        # ones before; a fall of more than the default margin, significant at the default
        # level) shows within a one-minute run.
        # Half of a newcomer's first claims are gold (until 12 gold answers), and a weaker
        # prior on annotators (worth 3 gold answers, not 5): a spammer is caught within their
        # first ~30 claims rather than after doing damage.
        "gold": {
            "rate": {"crowd": 0.2, "expert": 0.05},
            "new_annotator_rate": 0.5,
            "warmup": 12,
        },
        "consensus": {"annotator_prior": {"alpha": 2.0, "beta": 1.0}},
        "quality": {"drift_window": 15},
    }


def run_demo(opts: DemoOptions, out: TextIO = sys.stdout) -> DemoReport:
    """Run the campaign and print the report; the service keeps serving unless `exit`."""
    data = make_dataset(opts.items, max(40, opts.items // 12), opts.seed)
    people = roster(opts.crowd, opts.experts)
    service = DemoService(opts.var_dir, opts.host, opts.port)
    print(f"labelrouter demo: starting the service on {service.url} ...", file=out, flush=True)
    service.start()
    try:
        report = _campaign(service, data, people, opts, out)
        print(render(report), file=out, flush=True)
        if not opts.exit:
            print(f"\nServing on {service.url} until Ctrl-C.", file=out, flush=True)
            service.wait()
        return report
    finally:
        service.stop()


def _campaign(
    service: DemoService,
    data: Dataset,
    people: list[Behaviour],
    opts: DemoOptions,
    out: TextIO,
) -> DemoReport:
    with LabelRouter(service.url, service.admin_key) as admin:
        project = admin.create_project(
            "demo: content moderation",
            {"kind": "categorical", "classes": list(CLASSES)},
            "moderation-v1",
            routing=demo_routing(opts.items),
        )
        pid = project.id
        ops = admin.with_key(admin.create_key(pid, "ops", "demo ops").key)
        producer = admin.with_key(admin.create_key(pid, "producer", "demo pipeline").key)
        ops.add_gold(
            pid,
            [
                {
                    "external_id": g.external_id,
                    "payload": {"external_id": g.external_id},
                    "answer": CLASSES[g.truth],
                }
                for g in data.gold
            ],
        )
        producer.ingest(pid, (it.as_ingest() for it in data.items), batch_size=500, ndjson=True)
        keys = {p.name: ops.create_annotator(pid, p.name, p.tier).api_key for p in people}
        print(
            f"project {pid}: {len(data.items):,} items, {len(data.gold)} gold; "
            f"{sum(p.tier == 'crowd' for p in people)} crowd annotators and "
            f"{sum(p.tier == 'expert' for p in people)} experts at work",
            file=out,
            flush=True,
        )
        outcome = run_campaign(
            admin, pid, keys, people, data, opts.seed, ops=ops, budget=opts.budget
        )
        report = gather(ops, pid, data, people, outcome, opts.seed)
    report.url, report.admin_key = service.url, service.admin_key
    report.baselines = baselines(
        data.items,
        people,
        opts.seed,
        router_cost=report.cost,
        router_expert_items=report.expert_labels,
        crowd_cost=report.cost_per_label["crowd"],
        expert_cost=report.cost_per_label["expert"],
    )
    return report
