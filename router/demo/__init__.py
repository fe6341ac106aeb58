"""`labelrouter demo`: a simulated labeling campaign over the real HTTP API, with its report.

`dataset` and `crowd` are the simulation (pure, seeded), `baselines` what the same people do
without the router, `service` starts `labelrouter serve` on the embedded default, `campaign`
runs the annotators as concurrent clients, `report` reads the outcome back through the API.
"""

from __future__ import annotations

from router.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
