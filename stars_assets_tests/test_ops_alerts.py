"""Alerts: failed checks and failed runs in a real Dagster instance become one masked alert each, posted once."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from slack_sdk import WebClient

from stars_assets import settings
from stars_assets.defs.bronze.assets import build_bronze_asset
from stars_assets.defs.ops.alerts import alert_on_failed_asset_checks, alert_on_failed_runs
from stars_assets.defs.resources import build_resources
from stars_assets.lib.ops.alerts import check_failure_alert, post_alert, run_partition
from stars_assets.lib.providers import load_registry

MEMBER_ID, MBI = "M123456789", "1EG4TE5MK73"


@pytest.fixture
def webhook():
    """A local webhook receiver on 127.0.0.1 recording every JSON body posted to it."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def instance(tmp_path, monkeypatch, webhook):
    monkeypatch.setenv("STARS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STARS_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    monkeypatch.setenv("STARS_ALERT_WEBHOOK_URL", webhook[0])
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        yield instance


def written_alerts() -> list[dict]:
    path = settings.alerts_path()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def evaluate_check_sensor(instance, cursor):
    return alert_on_failed_asset_checks.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


@dg.asset(
    check_specs=[
        dg.AssetCheckSpec("check_validity_member_ids", asset="enrollment"),
        dg.AssetCheckSpec("check_uniqueness_ids", asset="enrollment"),
    ]
)
def enrollment():
    yield dg.Output(None)
    yield dg.AssetCheckResult(
        check_name="check_validity_member_ids",
        passed=False,
        description=f"member {MEMBER_ID} (MBI {MBI}) is not enrolled",
        metadata={"rows_failed": 3, "examples": [MEMBER_ID]},
    )
    yield dg.AssetCheckResult(check_name="check_uniqueness_ids", passed=True)


def test_a_failed_check_writes_one_masked_alert_and_posts_it_once(instance, webhook, tmp_path):
    _, posted = webhook
    started = evaluate_check_sensor(instance, None)
    run = dg.materialize([enrollment], instance=instance)

    first = evaluate_check_sensor(instance, started.cursor)
    (alert,) = written_alerts()
    assert alert["kind"] == "asset_check" and alert["severity"] == "ERROR"
    assert (alert["asset"], alert["check"], alert["partition"]) == ("enrollment", "check_validity_member_ids", None)
    assert alert["counts"] == {"rows_failed": 3} and alert["link"] == f"/runs/{run.run_id}"
    text = json.dumps(alert)
    assert MEMBER_ID not in text and MBI not in text and "********89" in text
    assert posted == [alert]

    assert evaluate_check_sensor(instance, first.cursor).cursor == first.cursor
    evaluate_check_sensor(instance, "0")  # a reset cursor sees the run again: the idempotency key holds
    assert len(written_alerts()) == 1 and len(posted) == 1

    # The project's own bronze check: an empty delivery is quarantined and warns, with its counts.
    dialer = next(p for p in load_registry() if p.name == "dialer")
    landing = settings.landing_dir() / "dialer"
    landing.mkdir(parents=True)
    (landing / "dialer_calls_20261001.csv").write_bytes(b"")
    dg.materialize([build_bronze_asset(dialer)], partition_key="2026-10-01", instance=instance, resources=build_resources())
    evaluate_check_sensor(instance, first.cursor)
    warning = written_alerts()[-1]
    assert (warning["asset"], warning["check"], warning["severity"]) == (
        "bronze/dialer",
        "check_validity_rows_quarantined",
        "WARN",
    )
    assert warning["partition"] == "2026-10-01" and warning["counts"]["files_quarantined"] == 1
    assert len(written_alerts()) == 2 and posted[-1] == warning


@dg.asset
def member_lookup():
    raise ValueError(f"could not resolve member {MEMBER_ID}")


def test_a_failed_run_writes_one_masked_alert(instance, webhook):
    _, posted = webhook
    run = dg.materialize([member_lookup], instance=instance, raise_on_error=False)
    assert not run.success
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
    context = dg.build_run_status_sensor_context(
        "alert_on_failed_runs", failure.event_log_entry.dagster_event, instance, instance.get_run_by_id(run.run_id)
    ).for_run_failure()

    alert_on_failed_runs(context)
    alert_on_failed_runs(context)

    (alert,) = written_alerts()
    assert alert["kind"] == "run_failure" and alert["counts"] == {"failed_steps": 1}
    assert "could not resolve member ********89" in alert["message"] and MEMBER_ID not in json.dumps(alert)
    assert posted == [alert]


def test_a_range_run_reports_its_range_and_an_unreachable_webhook_is_reported_not_raised():
    assert (
        run_partition({"dagster/asset_partition_range_start": "2026-11-15", "dagster/asset_partition_range_end": "2026-11-21"})
        == "2026-11-15...2026-11-21"
    )
    alert = check_failure_alert(
        run_id="r1", job="j", asset="a", check="c", partition=None, severity="WARN", description=None, metadata={}, occurred_at=0
    )
    assert post_alert("http://127.0.0.1:9/alerts", alert).startswith("alert webhook POST failed")


@pytest.fixture
def slack_api():
    """Slack's Web API as a local server on 127.0.0.1: records each chat.postMessage call and answers ok."""
    calls: list[dict] = []

    class SlackApi(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append({"path": self.path, "authorization": self.headers["Authorization"], **body})
            payload = json.dumps({"ok": True, "channel": body.get("channel"), "ts": "1.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/", calls
    finally:
        server.shutdown()
        server.server_close()


def test_with_a_slack_token_a_failed_run_is_also_posted_to_slack_masked(instance, webhook, slack_api, monkeypatch):
    from stars_assets.defs.ops import alerts

    assert alerts.slack_client() is None  # no token: no Slack
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("STARS_ALERT_SLACK_CHANNEL", "#stars-ops")
    assert alerts.slack_client().token == "xoxb-test-token"  # dagster-slack's client
    url, calls = slack_api
    # The same client, pointed at the local Slack API.
    monkeypatch.setattr(alerts, "slack_client", lambda: WebClient(token="xoxb-test-token", base_url=url))

    run = dg.materialize([member_lookup], instance=instance, raise_on_error=False)
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
    context = dg.build_run_status_sensor_context(
        "alert_on_failed_runs", failure.event_log_entry.dagster_event, instance, instance.get_run_by_id(run.run_id)
    ).for_run_failure()
    alert_on_failed_runs(context)
    alert_on_failed_runs(context)  # written and posted once

    (call,) = calls
    assert call["path"] == "/api/chat.postMessage" and call["authorization"] == "Bearer xoxb-test-token"
    assert call["channel"] == "#stars-ops"
    assert "*ERROR* run of" in call["text"] and f"/runs/{run.run_id}" in call["text"]
    assert "could not resolve member ********89" in call["text"] and MEMBER_ID not in call["text"]
    assert len(webhook[1]) == 1  # the webhook still gets it too
