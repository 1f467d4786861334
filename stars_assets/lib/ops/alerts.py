"""Alerts for failed asset checks and failed runs: built, written once to a JSON-lines file, posted.

Member identifiers are PHI: every free-text field (messages, non-numeric check metadata) is
masked before it is written or sent. Each alert carries an idempotency key, (run, asset,
check, partition) or (run, run failure), and `append_alert` writes a key at most once, so a
sensor that evaluates the same failure twice (a reset cursor, a retried tick) alerts once.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stars_assets.lib.masking import mask_text
from stars_assets.lib.ops.windows import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

DETAIL_MAX_CHARS = 500
WEBHOOK_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Alert:
    key: str
    time: str  # when the failure happened, ISO 8601 UTC
    kind: str  # asset_check | run_failure
    severity: str  # ERROR | WARN
    job: str
    asset: str | None
    partition: str | None
    check: str | None
    message: str
    link: str  # path of the run in the Dagster UI
    counts: dict[str, int | float] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def run_partition(tags: Mapping[str, str]) -> str | None:
    """The partition (or partition range) a run covered, from its tags."""
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    if RANGE_START_TAG in tags:
        return f"{tags[RANGE_START_TAG]}...{tags.get(RANGE_END_TAG, tags[RANGE_START_TAG])}"
    return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _is_count(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _masked_detail(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return mask_text(text)[:DETAIL_MAX_CHARS]


def check_failure_alert(
    *,
    run_id: str,
    job: str,
    asset: str,
    check: str,
    partition: str | None,
    severity: str,
    description: str | None,
    metadata: Mapping[str, object],
    occurred_at: float,
) -> Alert:
    """An alert for one failed check evaluation; numeric metadata become counts, the rest masked details."""
    return Alert(
        key=f"{run_id}|{asset}|{check}|{partition or ''}",
        time=_iso(occurred_at),
        kind="asset_check",
        severity=severity,
        job=job,
        asset=asset,
        partition=partition,
        check=check,
        message=mask_text(description or f"asset check {check} on {asset} failed"),
        link=f"/runs/{run_id}",
        counts={name: value for name, value in metadata.items() if _is_count(value)},
        details={name: _masked_detail(value) for name, value in metadata.items() if not _is_count(value)},
    )


def run_failure_alert(
    *, run_id: str, job: str, partition: str | None, message: str, occurred_at: float, failed_steps: int
) -> Alert:
    return Alert(
        key=f"{run_id}|run_failure",
        time=_iso(occurred_at),
        kind="run_failure",
        severity="ERROR",
        job=job,
        asset=None,
        partition=partition,
        check=None,
        message=mask_text(message)[:DETAIL_MAX_CHARS],
        link=f"/runs/{run_id}",
        counts={"failed_steps": failed_steps},
    )


def _written_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as lines:
        return {json.loads(line)["key"] for line in lines if line.strip()}


def append_alert(path: Path, alert: Alert) -> bool:
    """Append the alert as one JSON line unless its key was written before; True when written."""
    if alert.key in _written_keys(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(alert.to_json() + "\n")
    return True


def slack_text(alert: Alert) -> str:
    """The alert as one Slack message (mrkdwn); every field is already masked."""
    what = f"check `{alert.check}` on `{alert.asset}`" if alert.kind == "asset_check" else f"run of `{alert.job}`"
    lines = [f"*{alert.severity}* {what} failed" + (f" (partition {alert.partition})" if alert.partition else ""), alert.message]
    if alert.counts:
        lines.append(", ".join(f"{name}: {value}" for name, value in sorted(alert.counts.items())))
    lines.append(f"run: {alert.link}")
    return "\n".join(lines)


def post_alert(url: str, alert: Alert) -> str | None:
    """POST the alert as JSON; returns the error, if any, for the caller to log (a webhook outage is not fatal)."""
    request = urllib.request.Request(
        url, data=alert.to_json().encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The URL itself is left out: webhook URLs (Slack's among them) embed their secret.
        return f"alert webhook POST failed: {exc}"
    return None
