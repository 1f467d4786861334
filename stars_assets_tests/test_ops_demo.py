"""The demo's runs are launched through the code location, as the UI launches them, so the UI lists them under their job."""

import shutil
from datetime import date

import dagster as dg
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from stars_sim import demo

from stars_assets.settings import PROJECT_ROOT

DAY = date(2026, 10, 1)


def test_a_demo_run_is_attached_to_its_job_in_the_code_location(tmp_path, monkeypatch):
    monkeypatch.setenv("STARS_DATA_DIR", str(tmp_path / "data"))  # the code server and the run inherit it
    monkeypatch.delenv("STARS_WAREHOUSE", raising=False)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(demo.WORKSPACE)])) as workspace,
    ):
        run = demo._launch(
            workspace,
            instance,
            "ingest_daily_deliveries",
            {demo.RANGE_START_TAG: DAY.isoformat(), demo.RANGE_END_TAG: DAY.isoformat()},
        )
        listed = instance.get_runs(
            filters=dg.RunsFilter(job_name="ingest_daily_deliveries", tags={REPOSITORY_LABEL_TAG: "__repository__@stars_assets"})
        )
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert [r.run_id for r in listed] == [run.run_id]  # what the job's Runs tab in the UI asks for
    assert run.remote_job_origin.location_name == "stars_assets"
