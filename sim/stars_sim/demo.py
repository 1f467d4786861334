"""`make demo`: generate a small deterministic world, materialize every asset, print a summary.

The sample world covers the 120 delivery days up to yesterday (enough
history that 30/60/90-day closure rates and weekly trajectories are populated). Its clock ends at midnight; the
landing files' times are moved forward by the time since, so the world ends now and the freshness
checks judge the files as a live feed's. Runs are launched through the code location in
workspace.yaml, as the UI launches them, into the project's Dagster instance (DAGSTER_HOME):
`make dev` shows each under its job. One line per step; the runs' logs stay in their event logs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings

# Quiet: Dagster's beta and preview notices, here and in the processes the demo starts (code server, runs).
os.environ.setdefault("PYTHONWARNINGS", "ignore")
warnings.simplefilter("ignore")
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
from dagster._cli.job import _create_run
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from stars_assets import settings
from stars_assets.defs.ops.checks import landing_observation
from stars_assets.lib import lake
from stars_assets.lib.ops.freshness import latest_delivery
from stars_assets.lib.providers import load_registry
from stars_sim import generate

SEED = 7
MEMBERS = 2000
DAYS = 120  # enough history that 30/60/90-day closure rates and weekly trajectories are populated
SNAPSHOT_WEEKS = 8  # weekly snapshots (gold, predictions) of the last completed weeks
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
WORKSPACE = Path(settings.PROJECT_ROOT) / "workspace.yaml"
# The runs' console logger: warnings and errors only (every event is still in the run's event log).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _launch(workspace, instance: dg.DagsterInstance, job_name: str, tags: dict | None = None) -> dg.DagsterRun:
    """Launch a run of the job through the code location and wait for it, as the UI's Launch button does
    (but straight to the run launcher: `make demo` runs no daemon to take runs off the queue)."""
    started = time.monotonic()
    context = workspace.create_request_context()
    location = context.get_code_location("stars_assets")
    repository = next(iter(location.get_repositories().values()))
    run = _create_run(
        instance=instance,
        code_location=location,
        remote_repo=repository,
        remote_job=repository.get_full_job(job_name),
        run_config=QUIET_RUN_CONFIG,
        tags={"stars/trigger": "demo", **(tags or {})},
        op_selection=None,
        run_id=None,
    )
    instance.launch_run(run.run_id, context)
    while (run := instance.get_run_by_id(run.run_id)).status not in FINISHED:
        time.sleep(1)
    partition = tags and (tags.get("dagster/partition") or f"{tags.get(RANGE_START_TAG)}...{tags.get(RANGE_END_TAG)}")
    print(f"  {job_name}{f' {partition}' if partition else ''}: {run.status.value.lower()} in {time.monotonic() - started:.0f} s")
    return run


def _align_clock(landing: Path, world_ends: datetime) -> None:
    """Move every landed file's time forward by the time since the world's clock stopped, so the world ends now."""
    shift = time.time() - world_ends.timestamp()
    for path in landing.glob("*/*"):
        if path.is_file() and path.parent.name != "_truth":
            stat = path.stat()
            os.utime(path, (stat.st_atime + shift, stat.st_mtime + shift))


def _observe_landing(instance: dg.DagsterInstance, landing: Path) -> None:
    """Record what landed, as the observe_landing_folders sensor will once `make dev` runs it."""
    for provider in load_registry():
        instance.report_runless_asset_event(
            landing_observation(provider.name, latest_delivery(provider, landing / provider.name))
        )


def _check_evaluations(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list:
    return [
        record.event_log_entry.dagster_event.asset_check_evaluation_data
        for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    ]


CONTRACT_OUTLOOK_SQL = """
SELECT contract_id, projected_summary, coalesce(printf('%.0f%%', 100 * p_four_plus_cut_points), '-'),
       expected_stars, p_four_plus, lever_1, lever_1_gain
FROM model.contract_predictions
WHERE model = 'fitted' AND as_of_week_end = (SELECT max(as_of_week_end) FROM model.contract_predictions)
  AND expected_stars IS NOT NULL
ORDER BY contract_id
"""


def _table_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    tables = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE schema_name IN ('bronze', 'silver', 'gold', 'cms', 'model') ORDER BY 1"
    ).fetchall()
    return [(name, con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]) for (name,) in tables]


def completed_weeks(start: date, end: date) -> list[str]:
    """Weekly partition keys (Sundays) whose week ends (Saturday) fall within [start, end], the last
    SNAPSHOT_WEEKS of them: enough for a trajectory (each snapshot already holds the whole history)."""
    first_saturday = start + timedelta(days=(5 - start.weekday()) % 7)
    weeks = [
        (saturday - timedelta(days=6)).isoformat()
        for saturday in (first_saturday + timedelta(weeks=n) for n in range(DAYS // 7 + 1))
        if saturday <= end
    ]
    return weeks[-SNAPSHOT_WEEKS:]


def main() -> int:
    landing = settings.landing_dir()
    end = date.today() - timedelta(days=1)
    start = end - timedelta(days=DAYS - 1)
    print(f"1/3 generating a sample world ({MEMBERS} members, deliveries {start} .. {end}) into {landing}")
    with contextlib.redirect_stdout(io.StringIO()):  # the generator's own report: the ground truth holds it all
        generate.main(
            [
                "--seed",
                str(SEED),
                "--members",
                str(MEMBERS),
                "--days",
                str(DAYS),
                "--start-date",
                start.isoformat(),
                "--out",
                str(landing),
            ]
        )
    _align_clock(landing, datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC))
    # Partitions start where this world's deliveries do: the code location started below, and `make dev` later, read it.
    settings.first_delivery_date_file().write_text(start.isoformat())
    os.environ["STARS_FIRST_DELIVERY_DATE"] = start.isoformat()
    print(f"2/3 materializing into {settings.warehouse_path()} (runs launched through the code location in {WORKSPACE.name})")
    logging.getLogger("dagster.code_server").setLevel(logging.WARNING)
    with (
        dg.DagsterInstance.get() as instance,
        WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as workspace,
    ):
        _observe_landing(instance, landing)
        runs = [
            _launch(
                workspace,
                instance,
                "ingest_daily_deliveries",
                {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
            ),
            _launch(workspace, instance, "refresh_cms_reference_and_model"),
        ]
        # The weeks in one run (a single-run backfill, as the UI launches one): one run start instead of one per week.
        weeks = completed_weeks(start, end)
        runs.append(
            _launch(workspace, instance, "refresh_weekly_snapshots", {RANGE_START_TAG: weeks[0], RANGE_END_TAG: weeks[-1]})
        )
        # The API's member documents, built whole the first time (the store is empty), as of the last day.
        runs.append(_launch(workspace, instance, "refresh_member_documents", {"dagster/partition": end.isoformat()}))
        evaluations = [evaluation for run in runs for evaluation in _check_evaluations(instance, run)]
    print("3/3 summary")
    checks: Counter[str] = Counter()
    failed_checks: Counter[str] = Counter()  # check -> partitions (or 1) where it did not pass
    for evaluation in evaluations:
        if evaluation.check_name == "check_reproduction_overall_rating":
            metadata = {k: v.value for k, v in evaluation.metadata.items()}
            print(
                f"  CMS overall ratings reproduced (every star year): {metadata['matches']} of {metadata['published_numeric_ratings']} "
                f"({'passed' if evaluation.passed else 'FAILED'})"
            )
        outcome = "passed" if evaluation.passed else f"failed ({evaluation.severity.value})"
        checks[outcome] += 1
        if not evaluation.passed:
            failed_checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} [{evaluation.severity.value}]"] += 1
    with duckdb.connect(str(settings.warehouse_path()), read_only=True) as con:
        print("  rows per table:")
        for name, count in _table_counts(con):
            print(f"    {name:<42} {count:>10,}")
        print("  quarantined (layer, provider, reason):")
        for layer, provider, reason, count in con.execute(
            "SELECT layer, provider, reason, count(*) FROM audit.quarantine GROUP BY ALL ORDER BY 1, 2, 3"
        ).fetchall():
            print(f"    {layer:<7} {provider:<10} {reason:<26} {count:>8,}")
        print(
            "  contract outlook, latest week (CMS summary projected for star year 2028 under the forecast cut points and "
            "its P(4+) over cut-point uncertainty; fitted model: expected stars, P(4+), top lever):"
        )
        for row in con.execute(CONTRACT_OUTLOOK_SQL).fetchall():
            print("    {} {:>4} {:>5}  {:>5.2f}  {:>5.1%}  {} (+{:.2f})".format(*row))
    print(f"  lake at {settings.lake_uri()} (read it with `stars-lake tables`, `stars-lake sql ...`):")
    for layer, table in lake.list_tables():
        info = lake.describe_table(layer, table)
        print(f"    {layer + '.' + table:<42} {info.rows:>10,}  v{info.version}{'  PHI' if info.contains_phi else ''}")
    print("  asset checks: " + ", ".join(f"{n} {k}" for k, n in sorted(checks.items())))
    for failed, times in sorted(failed_checks.items()):
        print(f"    {failed}: {times} partition{'s' if times > 1 else ''}")
    ok = all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    print("demo " + ("finished" if ok else "finished with failed runs: see `make dev`"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
