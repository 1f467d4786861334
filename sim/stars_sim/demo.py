"""`make demo`: generate a small deterministic world, materialize every asset, print a summary.

The sample world covers the 14 delivery days up to yesterday, so the files look as fresh as a
live feed's (the freshness checks judge them against each vendor's SLA). Runs go through the
project's Dagster instance (DAGSTER_HOME), so `make dev` shows them.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import date, timedelta

import dagster as dg
import duckdb

from stars_assets import settings
from stars_sim import generate
from stars_assets.definitions import defs as load_definitions

SEED = 7
MEMBERS = 2000
DAYS = 14
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _run(definitions: dg.Definitions, job_name: str, instance: dg.DagsterInstance, tags: dict | None = None):
    started = time.monotonic()
    result = definitions.resolve_job_def(job_name).execute_in_process(instance=instance, tags=tags or {}, raise_on_error=False)
    print(f"  {job_name}: {'succeeded' if result.success else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return result


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
    """Weekly partition keys (Sundays) whose week ends (Saturday) fall within [start, end]."""
    first_saturday = start + timedelta(days=(5 - start.weekday()) % 7)
    return [(saturday - timedelta(days=6)).isoformat()
            for saturday in (first_saturday + timedelta(weeks=n) for n in range(DAYS // 7 + 1)) if saturday <= end]


def main() -> int:
    landing = settings.landing_dir()
    end = date.today() - timedelta(days=1)
    start = end - timedelta(days=DAYS - 1)
    print(f"1/3 generating a sample world ({MEMBERS} members, deliveries {start} .. {end}) into {landing}")
    generate.main(["--seed", str(SEED), "--members", str(MEMBERS), "--days", str(DAYS),
                   "--start-date", start.isoformat(), "--out", str(landing)])
    definitions = load_definitions()
    print(f"2/3 materializing into {settings.warehouse_path()}")
    with dg.DagsterInstance.get() as instance:
        results = [
            _run(definitions, "ingest_daily_deliveries", instance, {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}),
            _run(definitions, "refresh_cms_reference_and_model", instance),
        ]
        for week in completed_weeks(start, end):
            results.append(_run(definitions, "refresh_weekly_snapshots", instance, {"dagster/partition": week}))
    print("3/3 summary")
    checks: Counter[str] = Counter()
    failed_checks = []
    for result in results:
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.check_name == "check_reproduction_overall_rating":
                metadata = {k: v.value for k, v in evaluation.metadata.items()}
                print(f"  CMS overall ratings reproduced (every star year): {metadata['matches']} of {metadata['published_numeric_ratings']} "
                      f"({'passed' if evaluation.passed else 'FAILED'})")
            outcome = "passed" if evaluation.passed else f"failed ({evaluation.severity.value})"
            checks[outcome] += 1
            if not evaluation.passed:
                failed_checks.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} [{evaluation.severity.value}]")
    with duckdb.connect(str(settings.warehouse_path()), read_only=True) as con:
        print("  rows per table:")
        for name, count in _table_counts(con):
            print(f"    {name:<42} {count:>10,}")
        print("  quarantined (layer, provider, reason):")
        for layer, provider, reason, count in con.execute(
            "SELECT layer, provider, reason, count(*) FROM audit.quarantine GROUP BY ALL ORDER BY 1, 2, 3").fetchall():
            print(f"    {layer:<7} {provider:<10} {reason:<26} {count:>8,}")
        print("  contract outlook, latest week (CMS summary projected for star year 2028 under the forecast cut points and "
              "its P(4+) over cut-point uncertainty; fitted model: expected stars, P(4+), top lever):")
        for row in con.execute(CONTRACT_OUTLOOK_SQL).fetchall():
            print("    {} {:>4} {:>5}  {:>5.2f}  {:>5.1%}  {} (+{:.2f})".format(*row))
    print("  asset checks: " + ", ".join(f"{n} {k}" for k, n in sorted(checks.items())))
    for failed in failed_checks:
        print(f"    {failed}")
    ok = all(r.success for r in results)
    print("demo " + ("finished" if ok else "finished with failed runs: see `make dev`"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
