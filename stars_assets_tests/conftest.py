"""Shared fixtures: a generated world on disk and real Dagster runs into a real DuckDB file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from stars_sim import generate

from stars_assets.defs.bronze.assets import bronze_assets
from stars_assets.defs.resources import build_resources
from stars_assets.defs.silver import assets as silver

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Crosses the end of US daylight saving time (Sunday 1 November 2026).
WORLD_START = date(2026, 10, 27)
WORLD_DAYS = 10
WORLD_MEMBERS = 1500
WORLD_SEED = 11

INGEST_ASSETS = [
    *bronze_assets,
    silver.members,
    silver.care_gaps,
    silver.rx_fills,
    silver.outreach_events,
    silver.appointments,
    silver.quarantine,
]


def generate_world(landing: Path, start: date = WORLD_START, days: int = WORLD_DAYS, *extra: str) -> Path:
    generate.main(
        [
            "--seed",
            str(WORLD_SEED),
            "--members",
            str(WORLD_MEMBERS),
            "--days",
            str(days),
            "--start-date",
            start.isoformat(),
            "--out",
            str(landing),
            *extra,
        ]
    )
    return landing


def ingest(landing: Path, warehouse: Path, start: date, end: date, assets=None, instance=None) -> dg.ExecuteInProcessResult:
    """One real Dagster run over a range of delivery dates (single-run backfill)."""
    return dg.materialize(
        assets or INGEST_ASSETS,
        resources=build_resources(warehouse=str(warehouse), landing=str(landing)),
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
        instance=instance,
        raise_on_error=False,
    )


def read_truth(landing: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(landing / "_truth" / f"{name}.parquet")


def query(warehouse: Path, sql: str, params: dict | None = None) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or {}).df()


@dataclass(frozen=True)
class IngestedWorld:
    landing: Path
    warehouse: Path
    result: dg.ExecuteInProcessResult

    @property
    def last_day(self) -> date:
        return WORLD_START + timedelta(days=WORLD_DAYS - 1)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world") / "landing")


@pytest.fixture(scope="session")
def ingested(world, tmp_path_factory) -> IngestedWorld:
    warehouse = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    result = ingest(world, warehouse, WORLD_START, WORLD_START + timedelta(days=WORLD_DAYS - 1))
    return IngestedWorld(world, warehouse, result)


# --- The dashboard's world: the ingested world's gold and model weeks, published to a Delta lake by the publish assets ---

DASHBOARD_WEEKS = ("2026-10-25", "2026-11-01")  # weekly partitions (Sundays) whose week ends fall in or just after the world


@dataclass(frozen=True)
class PublishedWorld:
    warehouse: Path
    lake: Path


@pytest.fixture(scope="session")
def dashboard_world(ingested, tmp_path_factory) -> PublishedWorld:
    """The ingested world with the CMS reference, the model and two weekly snapshots, run by the project's jobs'
    selections (publishing included) into a lake of its own, on one instance so the check outcomes accumulate."""
    import shutil

    from stars_assets.definitions import defs
    from stars_assets.defs import jobs

    root = tmp_path_factory.mktemp("dashboard_world")
    warehouse = root / "warehouse.duckdb"
    shutil.copy(ingested.warehouse, warehouse)
    definitions = defs()
    assets = [*definitions.assets, *(definitions.asset_checks or [])]
    resources = build_resources(warehouse=str(warehouse), landing=str(ingested.landing))
    ingest_range = {RANGE_START_TAG: WORLD_START.isoformat(), RANGE_END_TAG: ingested.last_day.isoformat()}
    runs = [
        # silver is already built: publish what the ingest job publishes (silver, quarantine summary, freshness)
        (jobs.ingest_daily_deliveries_job.selection - dg.AssetSelection.groups("bronze", "silver"), None, ingest_range),
        (jobs.refresh_cms_reference_and_model_job.selection, None, {}),
        *[(jobs.refresh_weekly_snapshots_job.selection, week, {}) for week in DASHBOARD_WEEKS],
    ]
    with pytest.MonkeyPatch.context() as patch, dg.DagsterInstance.ephemeral() as instance:
        patch.setenv("STARS_LAKE_URI", str(root / "lake"))
        for selection, partition, tags in runs:
            result = dg.materialize(
                assets,
                selection=selection,
                resources=resources,
                partition_key=partition,
                tags=tags,
                instance=instance,
                raise_on_error=False,
            )
            assert result.success, f"{selection} {partition or tags} failed"
    return PublishedWorld(warehouse, root / "lake")


@pytest.fixture(scope="session")
def cms_history():
    """CMS's published 2023-2026 tables, long format, keyed by the measure crosswalk (read once per session)."""
    from stars_assets.lib.cms import backtest

    return backtest.load_history()


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server for the session (Debian's binaries, a temporary folder, a free loopback port)."""
    from stars_sim.postgres import throwaway_postgres

    with throwaway_postgres() as url:
        yield url
