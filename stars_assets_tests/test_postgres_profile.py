"""The production profile: a real Dagster run recorded in PostgreSQL storage (dagster.postgres.yaml), writing
member documents to a PostgreSQL document store on the same throwaway server."""

from __future__ import annotations

import shutil

import dagster as dg
import psycopg
import pytest
import yaml

from stars_assets import settings
from stars_assets.defs.activation.assets import MEMBER_DOCUMENTS, member_documents
from stars_assets.defs.resources import build_resources
from stars_assets.lib.documents.store import DocumentStore
from stars_assets_tests.conftest import WORLD_START


@pytest.fixture
def postgres_instance(postgres_url, tmp_path, monkeypatch):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE dagster")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(settings.PROJECT_ROOT / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
    # dagster-postgres runs on psycopg2; SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, so name the driver.
    monkeypatch.setenv(
        "STARS_DAGSTER_POSTGRES_URL",
        postgres_url.replace("postgresql://", "postgresql+psycopg2://").rsplit("/", 1)[0] + "/dagster",
    )
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def test_profile_stores_runs_events_and_schedules_in_postgres():
    config = yaml.safe_load((settings.PROJECT_ROOT / "dagster.postgres.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "STARS_DAGSTER_POSTGRES_URL"}
    # The rest of the instance settings match the default profile.
    default = yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())
    assert {k: v for k, v in config.items() if k != "storage"} == default


def test_dagster_run_recorded_in_postgres(postgres_instance, postgres_url, ingested):
    documents_db = postgres_url.rsplit("/", 1)[0] + "/documents"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE documents")
    resources = build_resources(warehouse=str(ingested.warehouse), landing=str(ingested.landing), documents=documents_db)
    result = dg.materialize(
        [member_documents], resources=resources, instance=postgres_instance, partition_key=WORLD_START.isoformat()
    )
    assert result.success

    run = postgres_instance.get_run_by_id(result.run_id)
    assert run is not None and run.is_success
    event = postgres_instance.get_latest_materialization_event(MEMBER_DOCUMENTS)
    assert event is not None and event.run_id == result.run_id
    with psycopg.connect(postgres_url.rsplit("/", 1)[0] + "/dagster") as conn:
        stored_runs = conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()[0]
        stored_events = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,)).fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert stored_runs == 1 and stored_events > 5
    assert {"runs", "event_logs", "jobs", "job_ticks"} <= tables  # job_ticks: schedule and sensor ticks

    store = DocumentStore(documents_db)
    try:
        written = store.summary()
    finally:
        store.close()
    assert written["backend"] == "postgresql" and written["documents"] > 1000
