"""``labelrouter simulate``: its arguments, and running it (called from ``router.cli``)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from router.routing.config import (
    RoutingConfig,
    RoutingConfigInvalid,
    _read_yaml,
    load_default_config,
    merge_overrides,
)
from router.simulate.engine import SimulationSettings
from router.simulate.replay import ReplayInputError, load_replay
from router.simulate.report import (
    ORACLE_AT_60,
    ORACLE_AT_ALL,
    ORACLE_AT_ROUTER,
    ROUTER,
    SimulationReport,
    format_table,
    simulate,
)

__all__ = ["add_parser", "cmd_simulate", "load_simulation_config", "summarize_runs"]


def add_parser(sub: Any) -> None:
    """Add the ``simulate`` subcommand to the CLI's subparsers."""
    p = sub.add_parser(
        "simulate",
        help="replay real crowd answers through the routing and consensus rules, in-process",
        description="Replay real crowd answers (../shared/data/crowd format) through the "
        "service's routing, gold and consensus rules, in-process, against majority vote, "
        "Dawid-Skene and random expert escalation on the same data.",
    )
    p.add_argument("--answers", required=True, type=Path, help="answers.csv: task,worker,label")
    p.add_argument("--gold", required=True, type=Path, help="gold.csv: task,gold (ground truth)")
    p.add_argument(
        "--config",
        type=Path,
        help="a routing config, complete or partial (merged over the default policy)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1, help="runs with seeds seed, seed+1, ...")
    p.add_argument("--gold-fraction", type=float, default=0.1)
    p.add_argument("--expert-accuracy", type=float, default=0.97)
    p.add_argument("--expert-cost", type=float, help="cost of an expert label (costs.expert)")
    p.add_argument("--model-accuracy", type=float, help="add synthetic model predictions")
    p.add_argument("--no-experts", action="store_true", help="crowd only: no expert tier")
    p.add_argument(
        "--confusion",
        choices=["symmetric", "refit"],
        help="labelers' model (quality.confusion_model; default: the config's): one accuracy "
        "from gold, or the Dawid-Skene refit's matrices with it as their prior",
    )
    p.add_argument(
        "--refit-every", type=int, default=1, help="rounds between two refits under refit (1)"
    )
    p.add_argument("--round-labels", type=int, help="crowd labels per round (default N/20)")
    p.add_argument(
        "--oracle",
        action="store_true",
        help="also run the oracle: items decided Bayes-optimally with every worker's "
        "Dawid-Skene matrix (fit to all answers) and the next workers known, at 32 prices",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", type=Path, help="write a PNG of accuracy against cost per item")
    p.set_defaults(func=cmd_simulate)


def load_simulation_config(path: Path | None, expert_cost: float | None) -> RoutingConfig:
    """The default policy, with a (partial) config file and ``--expert-cost`` merged over it."""
    config = load_default_config()
    if path is not None:
        data, problems = _read_yaml(path)
        if problems:
            raise RoutingConfigInvalid(problems)
        if data is not None:
            config = merge_overrides(config, data)
    if expert_cost is not None:
        config = merge_overrides(config, {"costs": {"expert": expert_cost}})
    return config


def summarize_runs(reports: list[SimulationReport]) -> list[dict[str, Any]]:
    """Median, min and max over runs of the router, random experts and the all-label baselines."""
    out = []
    names = {
        ROUTER: ROUTER,
        "random experts": "random experts",
        "majority vote": "majority vote, all labels",
        "dawid-skene": "dawid-skene, all labels",
        ORACLE_AT_ROUTER: ORACLE_AT_ROUTER,
        ORACLE_AT_ALL: ORACLE_AT_ALL,
        ORACLE_AT_60: ORACLE_AT_60,
    }
    for policy, shown in names.items():
        rows = [r.row(policy) for r in reports if any(x.policy == policy for x in r.rows)]
        if not rows:
            continue
        summary: dict[str, Any] = {"policy": shown}
        for name in ("accuracy", "cost_per_item", "crowd_share"):
            values = [float(getattr(row, name)) for row in rows]
            summary[name] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
        out.append(summary)
    return out


def _summary_table(summary: list[dict[str, Any]], runs: int) -> str:
    lines = [f"over {runs} runs: median [min, max]"]
    for s in summary:
        parts = []
        for name, fmt in (("accuracy", ".3f"), ("cost_per_item", ".2f"), ("crowd_share", ".0%")):
            v = s[name]
            parts.append(
                f"{name.replace('_', ' ')} {v['median']:{fmt}} [{v['min']:{fmt}}, {v['max']:{fmt}}]"
            )
        lines.append(f"  {s['policy']:<32} " + "; ".join(parts))
    return "\n".join(lines)


def _fail(headline: str, problems: list[str]) -> int:
    print(f"labelrouter simulate: {headline}", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 2


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        config = load_simulation_config(args.config, args.expert_cost)
    except RoutingConfigInvalid as exc:
        return _fail("invalid routing config", [str(p) for p in exc.problems])
    try:
        data = load_replay(args.answers, args.gold)
    except ReplayInputError as exc:
        return _fail("cannot replay these files", exc.problems)
    if args.runs < 1:
        return _fail("invalid arguments", ["--runs must be at least 1"])
    reports = []
    for run in range(args.runs):
        try:
            settings = SimulationSettings(
                seed=args.seed + run,
                gold_fraction=args.gold_fraction,
                expert_accuracy=args.expert_accuracy,
                experts=not args.no_experts,
                model_accuracy=args.model_accuracy,
                confusion_model=args.confusion,
                refit_every=args.refit_every,
                round_labels=args.round_labels,
                oracle=args.oracle,
            )
            reports.append(simulate(data, config, settings))
        except ValueError as exc:
            return _fail("invalid arguments", [str(exc)])
    summary = summarize_runs(reports) if args.runs > 1 else None
    if args.json:
        body: dict[str, Any] = {"runs": [r.as_dict() for r in reports]}
        if summary is not None:
            body["summary"] = summary
        print(json.dumps(body if args.runs > 1 else reports[0].as_dict(), indent=2))
    else:
        for report in reports:
            print(format_table(report))
            print()
        if summary is not None:
            print(_summary_table(summary, args.runs))
    if args.plot is not None:
        from router.simulate.plot import PlotUnavailable, write_plot

        try:
            write_plot(
                reports[0], args.plot, title=f"{args.answers.parent.name} (seed {args.seed})"
            )
        except PlotUnavailable as exc:
            return _fail("cannot plot", [str(exc)])
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
