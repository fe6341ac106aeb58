"""Run the benchmarks: `python -m bench` runs all of them, `python -m bench ingest` one.

Each benchmark prints a table and writes its figures to bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = {
    "loop": "bench.loop",
    "calls": "bench.calls",
    "ingest": "bench.ingest",
    "kernel": "bench.kernel",
    "memory": "bench.memory",
    "ceilings": "bench.ceilings",
    "quality": "bench.quality",
    "consensus": "bench.consensus",
}
"""Name -> module; a module has NAME, add_arguments(parser) and run(args) -> dict."""
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(path) for name, path in BENCHMARKS.items()}


def build_parser(modules: dict[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="repetitions per benchmark; medians are reported"
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where <name>.json is written"
    )
    for module in modules.values():
        module.add_arguments(parser)
    return parser


def format_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    lines = []
    for n, r in enumerate([columns, *rows]):
        cells = [
            str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_result(result: dict[str, Any], elapsed_s: float, path: Path) -> None:
    print()
    print(f"== {result['name']} ({elapsed_s:.0f} s) ==")
    print(format_table(result["columns"], result["rows"]))
    for note in result.get("notes", []):
        print(f"  * {note}")
    print(f"  figures written to {path}")
    print()


def main(argv: Sequence[str] | None = None) -> int:
    modules = _modules()
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in modules]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {list(modules)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names = args.names or list(modules)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"labelrouter benchmarks: {', '.join(names)} on {os.cpu_count()} CPU core(s), "
        f"load average {load}. The machine is noisy and its cores are shared between the "
        "server and the benchmark clients: read the figures as rough, compare like with like."
    )
    args.results_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        started = time.perf_counter()
        result = modules[name].run(args)
        elapsed = time.perf_counter() - started
        result["finished_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        result["elapsed_s"] = elapsed
        result["argv"] = list(sys.argv[1:] if argv is None else argv)
        path = args.results_dir / f"{name}.json"
        path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
        _print_result(result, elapsed, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
