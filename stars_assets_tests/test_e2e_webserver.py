"""End to end: the real dagster-webserver and dagster-daemon on 127.0.0.1, driven through GraphQL.

One webserver and one daemon serve the module, with DAGSTER_HOME a temp copy of the project's
dagster.yaml (its run queue and one-slot pools) and data and warehouse in temp folders. Every
wait is bounded, and both processes are stopped whatever happens.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest

from stars_assets.defs.bronze.assets import build_bronze_asset
from stars_assets.defs.ops.sensors import file_arrival_sensor_name
from stars_assets.defs.resources import build_resources
from stars_assets.defs.silver import assets as silver
from stars_assets.lib.providers import load_registry
from stars_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
LOCATION = {"repositoryLocationName": "stars_assets", "repositoryName": "__repository__"}
INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"
SCREENSHOT = PROJECT_ROOT / "docs" / "asset-graph.png"
CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
DIALER_HEADER = (
    '"Call ID","Member Ref","Campaign","Call Start","Disposition","Duration Sec","Agent Type","Measure","Agent Name"\r\n'
)
IHWA_HEADER = "RECORD_ID|MBI|VISIT_ID|VISIT_STATUS|STATUS_DATE|STATUS_TIME|GAP_CODES|NURSE_NAME\n"
MEMBER_REFS = [f"VR0000000{n}" for n in range(5)]
TODAY = datetime.now(UTC).date()  # partitions are UTC days


class DagsterStack:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "dagster_home"
        self.data = root / "data"
        self.landing = self.data / "landing"
        self.warehouse = self.data / "warehouse.duckdb"
        self.port = _free_port()
        self.logs: dict[str, Path] = {}
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        self.home.mkdir()
        shutil.copy(INSTANCE_CONFIG, self.home / "dagster.yaml")
        # Validates the config and creates the SQLite storage once: two processes starting on an
        # empty DAGSTER_HOME race to create it (alembic "more than one head").
        with dg.DagsterInstance.from_config(str(self.home)):
            pass
        env = {key: value for key, value in os.environ.items() if key != "STARS_ALERT_WEBHOOK_URL"}
        env.update(DAGSTER_HOME=str(self.home), STARS_DATA_DIR=str(self.data), STARS_WAREHOUSE=str(self.warehouse))
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        for name, command in {
            "webserver": [BIN / "dagster-webserver", "-h", "127.0.0.1", "-p", str(self.port), "-w", workspace],
            "daemon": [BIN / "dagster-daemon", "run", "-w", workspace],
        }.items():
            self.logs[name] = self.root / f"{name}.log"
            with self.logs[name].open("w") as log:
                # A session of its own, so stopping it also stops the code servers and run workers it started.
                self.processes[name] = subprocess.Popen(
                    [str(part) for part in command],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def stop(self) -> None:
        """SIGTERM to each process group started here, then SIGKILL to whatever is left of it."""
        for signal_number, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            for process in self.processes.values():
                try:
                    os.killpg(process.pid, signal_number)
                except ProcessLookupError:
                    pass  # the whole group has exited
            for process in self.processes.values():
                try:
                    process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass

    def log_text(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ---\n" + "\n".join(self.log_text(name).splitlines()[-lines:]) for name in self.logs)

    def graphql(self, query: str, **variables) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def wait_for(self, what: str, probe: Callable[[], object], timeout: float, interval: float = 2.0):
        """Poll until `probe` returns something truthy; fail with both logs' tails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited while waiting for {what}\n{self.log_tail()}"
            value = probe()
            if value:
                return value
            time.sleep(interval)
        pytest.fail(f"timed out after {timeout} s waiting for {what}\n{self.log_tail()}")

    def location_loaded(self) -> bool:
        try:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
                "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
            )
        except (urllib.error.URLError, ConnectionError):
            return False
        (entry,) = data["workspaceOrError"]["locationEntries"]
        error = entry["locationOrLoadError"] or {}
        assert error.get("__typename") != "PythonError", error.get("message")
        return entry["loadStatus"] == "LOADED" and error.get("__typename") == "RepositoryLocation"

    def start_sensor(self, name: str) -> None:
        selector = {**LOCATION, "sensorName": name}
        state = self.graphql(
            "query Sensor($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { "
            "... on Sensor { sensorState { status } } } }",
            selector=selector,
        )["sensorOrError"]
        if state["sensorState"]["status"] == "RUNNING":
            return
        started = self.graphql(
            "mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { __typename "
            "... on Sensor { sensorState { status } } ... on PythonError { message } } }",
            selector=selector,
        )["startSensor"]
        assert started == {"__typename": "Sensor", "sensorState": {"status": "RUNNING"}}, started

    def runs(self, **tags) -> list[dict]:
        data = self.graphql(
            "query Runs($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results { "
            "runId status creationTime endTime tags { key value } } } } }",
            filter={"tags": [{"key": key, "value": value} for key, value in tags.items()]},
        )
        return data["runsOrError"]["results"]

    def run_messages(self, run_id: str) -> list[str]:
        data = self.graphql(
            "query Logs($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events { "
            "... on MessageEvent { message } } } } }",
            runId=run_id,
        )
        return [event.get("message") or "" for event in data["logsForRun"]["events"]]

    def run_of_partition(self, provider: str, day: date) -> dict | None:
        """The finished sensor run for the provider's day; fails as soon as one failed."""
        runs = [
            run
            for run in self.runs(**{"stars/provider": provider})
            if {"key": "dagster/partition", "value": day.isoformat()} in run["tags"]
        ]
        assert all(run["status"] in ("SUCCESS", "QUEUED", "NOT_STARTED", "STARTING", "STARTED") for run in runs), (
            f"{runs}\n{self.log_tail()}"
        )
        return next((run for run in runs if run["status"] == "SUCCESS"), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seed_members(stack: DagsterStack, day: date) -> None:
    """The warehouse already knows its members: an EDW snapshot loaded in process before the stack starts
    (outreach events resolve vendor references through silver.member_identifiers)."""
    path = stack.landing / "edw" / f"members_{day:%Y%m%d}.parquet"
    path.parent.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute(f"""
            COPY (
                SELECT 'M10000000' || i AS member_id, '1EG4TE5MK7' || i AS mbi, 'VR0000000' || i AS vendor_ref,
                       DATE '1950-01-01' + CAST(i AS INTEGER) AS birth_date, 'F' AS sex, 'H1111' AS contract_id,
                       'NORTH' AS region, false AS dual_status, false AS lis_status,
                       DATE '2024-01-01' AS enrollment_start, CAST(NULL AS DATE) AS enrollment_end,
                       true AS has_diabetes, false AS has_hypertension, false AS has_hyperlipidemia
                FROM range({len(MEMBER_REFS)}) AS r(i)
            ) TO '{path}' (FORMAT parquet)
        """)
    edw = next(provider for provider in load_registry() if provider.name == "edw")
    seeded = dg.materialize(
        [build_bronze_asset(edw), silver.members],
        partition_key=day.isoformat(),
        resources=build_resources(warehouse=str(stack.warehouse), landing=str(stack.landing)),
    )
    assert seeded.success


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = DagsterStack(tmp_path_factory.mktemp("e2e"))
    try:
        seed_members(stack, TODAY - timedelta(days=30))
        stack.start()
        stack.wait_for("the webserver to load the stars_assets location", stack.location_loaded, timeout=120)
        yield stack
    finally:
        stack.stop()


def deliver(path: Path, text: str) -> None:
    """A file as a finished upload leaves it (last written a minute ago, so the sensor need not wait for it to settle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    settled = time.time() - 60
    os.utime(path, (settled, settled))


def manifest(stack: DagsterStack, provider: str) -> list[tuple]:
    with duckdb.connect(str(stack.warehouse), read_only=True) as con:
        return con.execute(
            "SELECT partition_date, file_path, status FROM audit.file_manifest WHERE provider = $p ORDER BY 1", {"p": provider}
        ).fetchall()


def test_a_sensor_turned_on_through_graphql_runs_a_dropped_file(stack):
    day = TODAY - timedelta(days=2)
    name = f"dialer_calls_{day:%Y%m%d}.csv"
    calls = "".join(
        f'"C{n}","{ref}","FALL","{day} 1{n}:15:00","CONNECTED","95","LIVE","BCS","Pat Lee"\r\n'
        for n, ref in enumerate(MEMBER_REFS[:2])
    )
    deliver(stack.landing / "dialer" / name, DIALER_HEADER + calls)

    stack.start_sensor(file_arrival_sensor_name("dialer"))

    stack.wait_for("the sensor's run to succeed", lambda: stack.run_of_partition("dialer", day), timeout=180)
    assert manifest(stack, "dialer") == [(day, f"dialer/{name}", "loaded")]
    with duckdb.connect(str(stack.warehouse), read_only=True) as con:
        events = con.execute(
            "SELECT member_id, channel, event_type FROM silver.outreach_events WHERE partition_date = $day ORDER BY 1",
            {"day": day},
        ).fetchall()
    assert events == [("M100000000", "LIVE_CALL", "REACHED"), ("M100000001", "LIVE_CALL", "REACHED")]


def test_backfills_sensors_and_the_warehouse_pool_never_collide(stack):
    """Every provider's bronze asset backfilled over 14 days at once, and a run of the dialer's arrival job (what
    its sensor launches) writing the same warehouse while the backfill runs: the one-slot pool serializes the
    writers, so every run succeeds. The arrival run is launched as soon as the backfill's run has started: with
    every step in one process the backfill takes seconds, shorter than a sensor's tick interval."""
    days = [TODAY - timedelta(days=offset) for offset in range(20, 6, -1)]
    for day in days:  # one visit a day (identical files would be skipped as re-deliveries)
        deliver(
            stack.landing / "ihwa" / f"IHWA_ASSESSMENTS_{day:%Y%m%d}.txt",
            IHWA_HEADER + f"IH{day:%Y%m%d}01|1EG4TE5MK70|V{day:%d}|SCH|{day:%m/%d/%Y}|09:30|BCS|Ana Peña\n",
        )

    launched = stack.graphql(
        "mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) { "
        "__typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
        params={
            "partitionNames": [day.isoformat() for day in days],
            "assetSelection": [{"path": ["bronze", provider.name]} for provider in load_registry()],
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = {"dagster/backfill": launched["backfillId"]}
    stack.wait_for(
        "the backfill's run to start", lambda: any(run["status"] == "STARTED" for run in stack.runs(**backfill)), timeout=180
    )

    sensor_day = days[-1]  # a day the backfill rewrites too
    deliver(stack.landing / "dialer" / f"dialer_calls_{sensor_day:%Y%m%d}.csv", DIALER_HEADER)
    arrival_run = stack.graphql(
        "mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        params={
            "selector": {**LOCATION, "jobName": "load_dialer_arrivals"},
            "executionMetadata": {
                "tags": [
                    {"key": "dagster/partition", "value": sensor_day.isoformat()},
                    {"key": "stars/provider", "value": "dialer"},
                ]
            },
        },
    )["launchRun"]
    assert arrival_run["__typename"] == "LaunchRunSuccess", arrival_run

    def backfill_status():
        status = stack.graphql(
            "query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            id=launched["backfillId"],
        )
        finished = status["partitionBackfillOrError"]["status"]
        return finished if finished.startswith("COMPLETED") or finished in ("FAILED", "CANCELED") else None

    assert stack.wait_for("the backfill to finish", backfill_status, timeout=300) == "COMPLETED_SUCCESS", stack.log_tail()
    backfill_runs = stack.runs(**backfill)
    assert backfill_runs and all(run["status"] == "SUCCESS" for run in backfill_runs), backfill_runs
    # A backfill launched as the UI launches it runs every step in the run's own process (no process per step).
    for run in backfill_runs:
        messages = stack.run_messages(run["runId"])
        assert any(m.startswith("Executing steps in process") for m in messages), messages[:20]
        assert not any("multiprocess executor" in m for m in messages)
    sensor_run = stack.wait_for("the arrival run to succeed", lambda: stack.run_of_partition("dialer", sensor_day), timeout=180)

    assert sensor_run["creationTime"] < max(run["endTime"] for run in backfill_runs), "the runs did not overlap"
    assert [(day, status) for day, _, status in manifest(stack, "ihwa")] == [(day, "loaded") for day in days]
    assert (sensor_day, f"dialer/dialer_calls_{sensor_day:%Y%m%d}.csv", "loaded") in manifest(stack, "dialer")
    assert "Could not set lock" not in stack.log_text("daemon")


def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB or RGBA PNG (what Chromium writes) into a (height, width, channels) array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, compressed = 8, bytearray()
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color_type = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            compressed += body
    assert depth == 8 and color_type in (2, 6), (depth, color_type)
    channels = 4 if color_type == 6 else 3
    stride = width * channels
    raw = zlib.decompress(bytes(compressed))
    image = np.zeros((height, stride), dtype=np.int32)
    above = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int32)
        if kind == 0:  # None
            row = row
        elif kind == 1:  # Sub: a running sum along the row, per channel
            row = np.cumsum(row.reshape(width, channels), axis=0).reshape(-1) & 0xFF
        elif kind == 2:  # Up
            row = (row + above) & 0xFF
        else:  # Average and Paeth depend on the pixel just decoded to the left: byte by byte
            values, up = row.tolist(), above.tolist()
            for x in range(stride):
                left = values[x - channels] if x >= channels else 0
                if kind == 3:
                    values[x] = (values[x] + ((left + up[x]) >> 1)) & 0xFF
                    continue
                up_left = up[x - channels] if x >= channels else 0
                estimate = left + up[x] - up_left
                distances = (abs(estimate - left), abs(estimate - up[x]), abs(estimate - up_left))
                nearest = left if distances[0] <= min(distances[1:]) else up[x] if distances[1] <= distances[2] else up_left
                values[x] = (values[x] + nearest) & 0xFF
            row = np.array(values, dtype=np.int32)
        image[y] = above = row
    return image.reshape(height, width, channels)


def test_screenshot_of_the_asset_graph(stack):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(f"Chromium is needed for the asset-graph screenshot: {CHROMIUM_INSTALL}")
    groups = {node["groupName"] for node in stack.graphql("{ assetNodes { groupName } }")["assetNodes"]}
    assert {"bronze", "silver"} <= groups
    stack.graphql("mutation { setNuxSeen }")  # the first-visit community dialog would cover the graph

    expanded = ",".join(f"global@global:{group}" for group in ("bronze", "silver"))
    shot = stack.root / "asset-graph.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={stack.root / 'chromium'}",
            "--hide-scrollbars",
            "--window-size=1600,2400",
            "--virtual-time-budget=30000",
            f"--screenshot={shot}",
            f"http://127.0.0.1:{stack.port}/asset-groups?expanded={expanded}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )

    pixels = png_pixels(shot.read_bytes())
    colors, counts = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0, return_counts=True)
    assert pixels.shape[:2] == (2400, 1600) and shot.stat().st_size > 50_000
    assert len(colors) > 100 and counts.max() < 0.95 * counts.sum(), "the screenshot is (nearly) blank"
    if os.environ.get("STARS_REFRESH_DOCS") == "1":  # `STARS_REFRESH_DOCS=1 make test` updates the README's picture
        shutil.copy(shot, SCREENSHOT)
