"""The dashboard in a real browser: the app started as `make dashboard` starts it (python -m stars_assets.dashboard)
on a free loopback port over the published test lake; headless Chromium, driven over the DevTools protocol, loads
every page, waits for the script run to finish, saves a screenshot, and the test fails on a Streamlit exception,
a missing title or chart, or any member id or MBI in the rendered page."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from websockets.sync.client import connect

from stars_assets.dashboard.app import PAGES

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STARTUP_SECONDS = 90
PAGE_SECONDS = 120
# Ids in the shape the plan uses (M + digits) and the MBI format (11 characters, CMS's alphabet without S L O I B Z).
ID_PATTERNS = [
    re.compile(r"\bM\d{6,}\b"),
    re.compile(
        r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d"
        r"[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y]{2}\d{2}\b"
    ),
]
PAGE_STATE_JS = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return JSON.stringify({
    state: app ? app.getAttribute('data-test-script-state') : null,
    connected: app ? app.getAttribute('data-test-connection-state') : null,
    titles: [...document.querySelectorAll('h1')].map(h => h.innerText.trim()),
    navigation: [...document.querySelectorAll('[data-testid="stSidebarNavLink"]')].map(a => a.innerText.trim()),
    charts: document.querySelectorAll('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').length,
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText),
    text: document.body.innerText,
  });
})()"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


class DevTools:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, websocket_url: str):
        self.socket = connect(websocket_url, max_size=None, open_timeout=30)
        self.ids = itertools.count(1)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=1400, height=1500, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: bool = False, **params) -> dict:
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        self.socket.close()


@pytest.fixture(scope="module")
def dashboard(dashboard_world, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "STARS_LAKE_URI": str(dashboard_world.lake)}
    log = (tmp_path_factory.mktemp("dashboard") / "streamlit.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "stars_assets.dashboard", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/_stcore/health", STARTUP_SECONDS)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium")
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (active.exists() and len(active.read_text().splitlines()) == 2):
            assert process.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.2)
        port, path = active.read_text().splitlines()
        devtools = DevTools(f"ws://127.0.0.1:{port}{path}")
        yield devtools
        devtools.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def render(browser: DevTools, url: str) -> dict:
    """Load a page and wait until Streamlit has finished the script run and drawn its title and charts."""
    browser.call("Page.navigate", session=True, url=url)
    deadline = time.monotonic() + PAGE_SECONDS
    settled = 0
    while True:
        page = json.loads(browser.evaluate(PAGE_STATE_JS) or "{}")
        done = page.get("state") == "notRunning" and page.get("connected") == "CONNECTED" and page.get("titles")
        settled = settled + 1 if done and (page["charts"] or page["exceptions"]) else 0
        if settled >= 3 or time.monotonic() > deadline:  # three polls in a row: charts drawn, no rerun pending
            return page
        time.sleep(0.5)


@pytest.mark.parametrize("script, title, url_path", PAGES)
def test_page_renders_in_chromium_without_member_ids(dashboard, browser, dashboard_world, script, title, url_path):
    page = render(browser, f"{dashboard}/{url_path}")
    shot = browser.call("Page.captureScreenshot", session=True, format="png")["data"]
    screenshots = Path(os.environ.get("DASHBOARD_SCREENSHOTS", dashboard_world.lake.parent / "screenshots"))
    screenshots.mkdir(parents=True, exist_ok=True)
    (screenshots / f"dashboard-{Path(script).stem}.png").write_bytes(base64.b64decode(shot))

    assert not page.get("exceptions"), page.get("exceptions")
    assert "Page not found" not in page["text"]
    assert page.get("titles") and page["titles"][0] == title
    assert page["navigation"] == [page_title for _, page_title, _ in PAGES]
    assert page["charts"] >= 1
    text = page["text"]
    with duckdb.connect(str(dashboard_world.warehouse), read_only=True) as con:
        known = [
            value
            for (value,) in con.execute(
                "SELECT member_id FROM silver.members UNION SELECT mbi FROM silver.members WHERE mbi IS NOT NULL "
                "UNION SELECT vendor_ref FROM silver.members WHERE vendor_ref IS NOT NULL"
            ).fetchall()
        ]
    assert not [value for value in known if value in text]
    assert not [pattern.pattern for pattern in ID_PATTERNS if pattern.search(text)]
