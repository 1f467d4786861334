"""Alert sensors: a failed asset check (ERROR or WARN) or a failed run becomes one alert.

Alerts go to data/alerts/alerts.jsonl (settings.alerts_path()); when STARS_ALERT_WEBHOOK_URL is
set they are also POSTed there as JSON, and when SLACK_BOT_TOKEN is set they are posted to the
Slack channel STARS_ALERT_SLACK_CHANNEL (default #stars-alerts) through dagster-slack. Both
sensors are on by default: alerting must not depend on someone remembering to switch it on.

Failed checks are found through finished runs: 1.13's default SQLite event storage is sharded
by run, and only run-status events carry a storage id that orders events across runs (the
cross-run ASSET_CHECK_EVALUATION query refuses a plain storage-id cursor there). So the cursor
is the storage id of the last finished run looked at, and each finished run's check
evaluations are read from its own log. The alerts file's idempotency keys stop repeats.
"""

import os
import time

import dagster as dg
from dagster_slack import SlackResource
from slack_sdk import WebClient

from stars_assets import settings
from stars_assets.lib.ops.alerts import (
    Alert,
    append_alert,
    check_failure_alert,
    post_alert,
    run_failure_alert,
    run_partition,
    slack_text,
)

WEBHOOK_ENV = "STARS_ALERT_WEBHOOK_URL"
SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
SLACK_CHANNEL_ENV = "STARS_ALERT_SLACK_CHANNEL"
DEFAULT_SLACK_CHANNEL = "#stars-alerts"
FINISHED_RUN_EVENTS = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)
RUNS_PER_TICK = 100


def slack_client() -> WebClient | None:
    """A Slack client when a bot token is configured, else None (Slack is optional)."""
    token = os.environ.get(SLACK_TOKEN_ENV)
    return SlackResource(token=token).get_client() if token else None


def post_to_slack(client: WebClient, alert: Alert) -> str | None:
    """Post the alert to the channel; returns the error, if any, for the caller to log (a Slack outage is not fatal)."""
    try:
        client.chat_postMessage(channel=os.environ.get(SLACK_CHANNEL_ENV, DEFAULT_SLACK_CHANNEL), text=slack_text(alert))
    except Exception as exc:  # SlackApiError, connection errors: the alert is already in the file
        return f"alert Slack post failed: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def _deliver(alert: Alert, log) -> bool:
    """Write the alert unless it was written before, then post it; True when it was new."""
    if not append_alert(settings.alerts_path(), alert):
        return False
    log.warning(f"alert: {alert.kind} {alert.severity} {alert.asset or alert.job} {alert.check or ''} {alert.link}")
    url = os.environ.get(WEBHOOK_ENV)
    errors = [post_alert(url, alert) if url else None]
    slack = slack_client()
    errors.append(post_to_slack(slack, alert) if slack else None)
    for error in filter(None, errors):
        log.error(error)
    return True


def _latest_finished_run_storage_id(instance: dg.DagsterInstance) -> int:
    latest = [
        record.storage_id
        for event_type in FINISHED_RUN_EVENTS
        for record in instance.fetch_run_status_changes(event_type, limit=1, ascending=False).records
    ]
    return max(latest, default=0)


def _finished_runs_after(instance: dg.DagsterInstance, storage_id: int, limit: int) -> list[dg.EventLogRecord]:
    """Run-finished events after the storage id, oldest first: the first `limit` across the three kinds
    (each kind's own first `limit` hold them all)."""
    records = [
        record
        for event_type in FINISHED_RUN_EVENTS
        for record in instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=storage_id), limit=limit, ascending=True
        ).records
    ]
    return sorted(records, key=lambda record: record.storage_id)[:limit]


def _failed_check_alerts(instance: dg.DagsterInstance, run_id: str) -> list[Alert]:
    run = instance.get_run_by_id(run_id)
    if run is None:  # deleted since it finished
        return []
    alerts = []
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.asset_check_evaluation_data
        if evaluation.passed:
            continue
        alerts.append(
            check_failure_alert(
                run_id=run_id,
                job=run.job_name,
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                partition=evaluation.partition or run_partition(run.tags),
                severity=evaluation.severity.value,
                description=evaluation.description,
                metadata={name: value.value for name, value in evaluation.metadata.items()},
                occurred_at=record.event_log_entry.timestamp,
            )
        )
    return alerts


@dg.sensor(
    name="alert_on_failed_asset_checks",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes an alert (data/alerts/alerts.jsonl; the STARS_ALERT_WEBHOOK_URL webhook and Slack when set) for every failed asset check, ERROR or WARN.",
)
def alert_on_failed_asset_checks(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    if context.cursor is None:
        # Like Dagster's run-status sensors, start from now instead of alerting on all history.
        context.update_cursor(str(_latest_finished_run_storage_id(context.instance)))
        return dg.SkipReason("started: alerting on runs that finish from now on")
    finished = _finished_runs_after(context.instance, int(context.cursor), RUNS_PER_TICK)
    alerts = [alert for record in finished for alert in _failed_check_alerts(context.instance, record.run_id)]
    written = sum(_deliver(alert, context.log) for alert in alerts)
    if finished:
        context.update_cursor(str(finished[-1].storage_id))
    return dg.SkipReason(f"{len(finished)} finished runs looked at, {written} alerts written")


def _root_cause(error) -> str:
    """The innermost message of a step's error (Dagster's SerializableErrorInfo): what broke, not the wrapper."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@dg.run_failure_sensor(
    name="alert_on_failed_runs",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes an alert (data/alerts/alerts.jsonl; the STARS_ALERT_WEBHOOK_URL webhook and Slack when set) for every failed run.",
)
def alert_on_failed_runs(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    finished = context.instance.get_run_record_by_id(run.run_id)
    step_failures = context.get_step_failure_events()
    # The run's own message names the failed steps; the first step's root error says what broke.
    errors = [event.step_failure_data.error for event in step_failures if event.step_failure_data.error is not None]
    cause = _root_cause(errors[0]) if errors else ""
    _deliver(
        run_failure_alert(
            run_id=run.run_id,
            job=run.job_name,
            partition=run_partition(run.tags),
            message=f"{context.failure_event.message or ''} {cause}".strip(),
            occurred_at=finished.end_time or time.time(),
            failed_steps=len(step_failures),
        ),
        context.log,
    )
