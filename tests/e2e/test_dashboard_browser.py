"""The ops dashboard in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the app served by uvicorn on a loopback port.

Log in with the ops key, read the seeded numbers in the tables, suspend an annotator from the
page and see the API report it, and save a screenshot under the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar import Litestar

from tests.conftest import auth
from tests.integration.dashboard_seed import metrics, seed_project
from workers import jobs as job_functions

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or (shutil.which("chromium") is None and not CHROMIUM.exists()),
    reason="no Chromium at /usr/bin/chromium (Debian's `chromium` package; .ci/run installs "
    "it): the browser test of the dashboard is skipped",
)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """The test's main thread keeps its own signal handlers."""


@pytest.fixture(name="served")
def fx_served(app: Litestar) -> Iterator[str]:
    """The app (the test's runtime) on 127.0.0.1, port chosen by the OS; its base URL."""
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_dashboard_in_chromium(client, admin, jobs, served, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    project = seed_project(client, admin, jobs)
    job_functions.snapshot_projects()  # a first point of history, with agreement
    expected = metrics(client, project)
    w1 = project["annotators"]["w1"]

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            page.goto(f"{served}/ui/")
            assert page.url.endswith("/ui/login")
            page.get_by_label("API key").fill(project["ops_key"])
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"**/ui/projects/{project['id']}")

            by_status = page.locator("#items-by-status")
            for status, n in expected["items"]["by_status"].items():
                assert by_status.locator(f'td[data-status="{status}"]').inner_text() == str(n)
            cost = page.locator('[data-metric="total-cost"]').inner_text()
            assert cost == f"{expected['labels']['total_cost']:,.2f}"
            assert page.locator('[data-metric="expert-load"]').inner_text() == (
                f"{expected['experts']['open']} / {expected['experts']['capacity']}"
            )
            row = page.locator('tr[data-annotator="w1"]')
            assert row.locator('[data-col="status"]').inner_text().startswith("active")
            assert "3/4" in row.inner_text()
            assert page.locator("#history").get_by_text("experts.capacity").count() == 1

            row.get_by_role("button", name="Suspend w1").click()
            page.wait_for_url(f"**/ui/projects/{project['id']}#annotators")
            status = page.locator('tr[data-annotator="w1"] [data-col="status"]')
            assert status.inner_text().startswith("suspended")

            api = client.get(
                f"/v1/projects/{project['id']}/annotators", headers=auth(project["ops_key"])
            ).json()
            assert {a["external_id"]: a["status"] for a in api} == {
                "w1": "suspended",
                "w2": "active",
            }
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            page.goto(f"{served}/ui/projects/{project['id']}/annotators/{w1['id']}")
            assert page.locator("svg.reliability rect.bar").count() >= 1
            page.screenshot(path=str(tmp_path / "annotator.png"), full_page=True)
        finally:
            browser.close()
    _keep_for_review(tmp_path)


def _keep_for_review(tmp_path: Path) -> Any:
    """LR_KEEP_SCREENSHOTS=dir copies the screenshots there (to look at them)."""
    import os

    target = os.environ.get("LR_KEEP_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, Path(target) / png.name)
