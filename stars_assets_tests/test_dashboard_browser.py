"""The dashboard in a real browser: the app started as `make dashboard` starts it (python -m stars_assets.dashboard)
on a free loopback port over the published test lake; headless Chromium, driven over the DevTools protocol, loads
every page, waits for the script run to finish, saves a screenshot, and the test fails on a Streamlit exception,
a missing title or chart, or any member id or MBI in the rendered page. On the campaign page, clicking bars with the
mouse drills channel > region > cohort > measure: the URL's query parameters follow each step, the bars and the table
show the next level's figures as computed on the lake, and the URL opened afresh shows the same view."""

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
import urllib.parse
import urllib.request
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable
from websockets.sync.client import connect

from stars_assets.dashboard.app import PAGES
from stars_assets.lib.lake import arrow_dataset

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


# --- Drill-down by selecting bars on the campaign page ------------------------------------------------------------

DRILL_STEPS = ["channel", "region", "cohort", "measure"]
# Each step's column in gold/campaign_effectiveness (the cohort being the page's default one, dual/LIS status) and
# its query parameter in the page's URL.
LAKE_COLUMNS = {"channel": "channel", "region": "region", "cohort": "dual_lis_cohort", "measure": "measure_code"}
URL_PARAMETERS = {"channel": "channel", "region": "region", "cohort": "cohort_value", "measure": "measure"}
DEFAULT_PARAMETERS = {"cohort": "dual_lis", "metric": "members_touched"}
LAKE_FIGURES_SQL = """
SELECT {column} AS value, sum(members_targeted) AS members_touched, sum(members_reached) AS members_reached,
       sum(members_engaged) AS members_engaged, sum(appointments_booked) AS appointments_booked,
       sum(closed_within_30d) AS closed_30d, sum(closed_within_60d) AS closed_60d, sum(closed_within_90d) AS closed_90d
FROM campaign WHERE as_of_week_end = (SELECT max(as_of_week_end) FROM campaign) {where}
GROUP BY 1
"""
# The campaign page as a person sees it: the bar chart's bars (Vega describes each for screen readers, e.g.
# "Channel: SMS; Members touched: 60; channel: SMS; members_touched: 60") with their centres on screen, the figures
# table (the data grid's accessible rows), the sidebar filters and the URL's query string.
CAMPAIGN_JS = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const bars = [...document.querySelectorAll('[class*="st-key-campaign_bars"] .mark-rect path[aria-roledescription="bar"]')];
  const rows = [...document.querySelectorAll('[data-testid="stDataFrame"] [role="row"]')];
  const filter = step => { const box = document.querySelector(`.st-key-campaign_${step} input`); return box ? box.value : null; };
  return JSON.stringify({
    state: app ? app.getAttribute('data-test-script-state') : null,
    search: location.search,
    bars: bars.map(bar => {
      const box = bar.getBoundingClientRect();
      return {label: bar.getAttribute('aria-label'), x: box.x + box.width / 2, y: box.y + box.height / 2};
    }),
    rows: rows.map(row => [...row.querySelectorAll('[role="columnheader"], [role="gridcell"]')].map(cell => cell.innerText)),
    filters: Object.fromEntries(['channel', 'region', 'cohort', 'measure'].map(step => [step, filter(step)])),
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText),
  });
})()"""


def number(text: str) -> float:
    return float(text.replace(",", ""))


def campaign_view(browser: DevTools) -> dict:
    """What the campaign page shows now: the level the bars break down by, members touched per bar, each bar's
    centre, the table's rows by the level's value, the sidebar filters and the query parameters."""
    page = json.loads(browser.evaluate(CAMPAIGN_JS) or "{}")
    bars, centres, levels = {}, {}, set()
    for bar in page.get("bars", []):
        fields = dict(part.split(": ", 1) for part in bar["label"].split("; "))
        level = next(step for step in DRILL_STEPS if step in fields)
        levels.add(level)
        bars[fields[level]] = number(fields["members_touched"])
        centres[fields[level]] = (bar["x"], bar["y"])
    header, *rows = page.get("rows") or [[]]
    return {
        "ready": page.get("state") == "notRunning",
        "exceptions": page.get("exceptions"),
        "params": dict(urllib.parse.parse_qsl(page.get("search", "").lstrip("?"))),
        "level": levels.pop() if len(levels) == 1 else sorted(levels),
        "bars": bars,
        "centres": centres,
        "table": {row[0]: dict(zip(header[1:], row[1:])) for row in rows if row},
        "filters": page.get("filters"),
    }


def wait_for_view(browser: DevTools, params: dict[str, str], level: str) -> dict:
    """Wait until the page has finished its runs and shows `level`'s bars under the URL `params`, unchanged for three
    polls in a row (a drill is a selection, a URL update and a second run; a stale selection would drill on)."""
    deadline = time.monotonic() + PAGE_SECONDS
    shown, settled = {}, 0
    while settled < 3:
        if time.monotonic() > deadline:
            now = {key: shown.get(key) for key in ("ready", "params", "level", "bars")}
            pytest.fail(f"expected the {level} level under {params}; the page shows {now}")
        time.sleep(0.5)
        previous, shown = shown, campaign_view(browser)
        assert not shown["exceptions"], shown["exceptions"]
        match = shown["ready"] and shown["params"] == params and shown["level"] == level and shown["table"]
        settled = settled + 1 if match and shown == previous else 0
    return shown


def click(browser: DevTools, x: float, y: float) -> None:
    """A left click with the mouse, as a person makes it."""
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
        browser.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, **extra)


def click_element(browser: DevTools, selector: str) -> None:
    box = json.loads(browser.evaluate(f"JSON.stringify(document.querySelector({json.dumps(selector)}).getBoundingClientRect())"))
    click(browser, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def lake_figures(lake: Path, path: dict[str, str], level: str) -> dict[str, dict[str, float]]:
    """The figures per value of `level` at the latest week within the drill `path`, straight from the Delta table."""
    con = duckdb.connect()
    con.register("campaign", arrow_dataset(DeltaTable(str(lake / "gold" / "campaign_effectiveness"))).to_table())
    where = "".join(f' AND "{LAKE_COLUMNS[step]}" = ?' for step in path)
    frame = con.execute(LAKE_FIGURES_SQL.format(column=f'"{LAKE_COLUMNS[level]}"', where=where), list(path.values())).df()
    return {row.pop("value"): row for row in frame.to_dict("records")}


def assert_view_equals_lake(shown: dict, expected: dict[str, dict[str, float]]) -> None:
    assert shown["bars"] == {value: figures["members_touched"] for value, figures in expected.items()}
    assert shown["table"] and set(shown["table"]) <= set(expected)  # the grid lists the rows it has on screen
    for value, cells in shown["table"].items():
        compared = {column: number(text) for column, text in cells.items() if column in expected[value]}
        assert {"members_touched", "members_reached"} <= set(compared)
        assert compared == {column: expected[value][column] for column in compared}, value


def test_selecting_bars_drills_down_through_the_url(dashboard, browser, dashboard_world):
    lake = dashboard_world.lake
    render(browser, f"{dashboard}/")
    shown = wait_for_view(browser, {}, "channel")
    assert_view_equals_lake(shown, lake_figures(lake, {}, "channel"))
    channel = max(shown["bars"], key=shown["bars"].get)  # the tallest bar: always there to click

    # A click on a bar drills one step down; the breadcrumb back up is not undone by that selection.
    click(browser, *shown["centres"][channel])
    shown = wait_for_view(browser, {"channel": channel, **DEFAULT_PARAMETERS}, "region")
    assert_view_equals_lake(shown, lake_figures(lake, {"channel": channel}, "region"))
    click_element(browser, ".st-key-up_channel button")
    shown = wait_for_view(browser, DEFAULT_PARAMETERS, "channel")

    path: dict[str, str] = {}
    for step, below in zip(DRILL_STEPS, DRILL_STEPS[1:]):
        value = max(shown["bars"], key=shown["bars"].get)
        click(browser, *shown["centres"][value])
        path[step] = value
        params = {URL_PARAMETERS[s]: v for s, v in path.items()} | DEFAULT_PARAMETERS
        shown = wait_for_view(browser, params, below)
        assert_view_equals_lake(shown, lake_figures(lake, path, below))
        assert {s: shown["filters"][s] for s in path} == path  # the sidebar follows the drill
    assert path["channel"] == channel

    # The drilled view is a link: opened afresh, it shows the same view.
    link = browser.evaluate("location.href")
    browser.call("Page.navigate", session=True, url="about:blank")
    render(browser, link)
    fresh = wait_for_view(browser, params, "measure")
    assert {key: fresh[key] for key in ("bars", "table", "filters")} == {key: shown[key] for key in ("bars", "table", "filters")}
