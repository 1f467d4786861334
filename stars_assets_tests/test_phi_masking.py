"""No PHI in what Dagster records: a small demo-like world is materialized through every layer
(bronze, silver, cms, gold, model) with the code location's own jobs, and every event of the runs
(materialization and asset-check metadata, log messages) is scanned for the generated members'
ids, MBIs, vendor references and birth dates, and every Markdown preview for a PHI column shown
in clear (diagnosis and eligibility flags have no distinctive value to search for)."""

from __future__ import annotations

import re
from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest
from dagster._serdes import serialize_value

from stars_assets.lib.masking import HIDDEN, markdown_preview, phi_columns
from stars_assets_tests.conftest import RANGE_END_TAG, RANGE_START_TAG, WORLD_MEMBERS, generate_world, read_truth

START = date(2026, 10, 27)
DAYS = 5  # through Saturday 2026-10-31: the week of Sunday 2026-10-25 is complete
WEEK = "2026-10-25"
MARKDOWN_TABLE = re.compile(r"^\|(.+)\|\n\|(?: ?--- ?\|)+\n((?:\|.*\|\n?)*)", re.MULTILINE)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, monkeypatch_module):
    data = tmp_path_factory.mktemp("phi")
    monkeypatch_module.setenv("STARS_DATA_DIR", str(data))
    landing = generate_world(data / "landing", START, DAYS)
    from stars_assets.definitions import defs

    definitions = defs()
    runs = [
        (
            "ingest_daily_deliveries",
            {RANGE_START_TAG: START.isoformat(), RANGE_END_TAG: (START + timedelta(days=DAYS - 1)).isoformat()},
        ),
        ("refresh_cms_reference_and_model", {}),
        ("refresh_weekly_snapshots", {"dagster/partition": WEEK}),
    ]
    with dg.instance_for_test() as instance:
        results = [
            definitions.resolve_job_def(job).execute_in_process(instance=instance, tags=tags, raise_on_error=False)
            for job, tags in runs
        ]
        entries = [entry for result in results for entry in instance.all_logs(result.run_id)]
        yield landing, results, entries


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _phi_values(landing) -> dict[str, set[str]]:
    members = read_truth(landing, "members")
    return {
        "member_id": set(members["member_id"]),
        "mbi": set(members["mbi"].dropna()),
        "vendor_ref": set(members["vendor_ref"].dropna()),
        "birth_date": set(pd.to_datetime(members["birth_date"]).dt.strftime("%Y-%m-%d")),
    }


def _clear_phi_cells(text: str) -> list[str]:
    """Cells of PHI columns in the Markdown tables of `text` that are not masked."""
    phi = phi_columns()
    shown = []
    for header, body in MARKDOWN_TABLE.findall(text):
        columns = [c.strip() for c in header.split("|")]
        for line in body.strip().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for column, cell in zip(columns, cells):
                if column in phi and cell not in ("", HIDDEN) and not re.fullmatch(r"\*+.{0,2}", cell):
                    shown.append(f"{column}={cell}")
    return shown


def _texts(entries) -> list[str]:
    texts = []
    for entry in entries:
        texts.append(entry.user_message or "")
        if entry.dagster_event is not None:
            texts.append(serialize_value(entry.dagster_event))
    return texts


def test_every_layer_ran(recorded):
    _, results, entries = recorded
    assert [r.success for r in results] == [True, True, True]
    materialized = {key.path[0] for r in results for key in (e.asset_key for e in r.get_asset_materialization_events())}
    assert materialized >= {"bronze", "silver", "cms", "gold", "model"}
    assert sum(1 for r in results for _ in r.get_asset_check_evaluations()) > 30
    assert len(entries) > 200


def test_no_member_identifier_or_birth_date_in_metadata_or_logs(recorded):
    landing, _, entries = recorded
    values = _phi_values(landing)
    assert all(len(found) >= WORLD_MEMBERS * 0.9 for found in values.values())
    text = "\n".join(_texts(entries))
    leaks = {kind: sorted(v for v in found if v in text)[:5] for kind, found in values.items()}
    assert leaks == {kind: [] for kind in values}


def test_no_phi_column_in_clear_in_any_preview(recorded):
    _, results, _ = recorded
    previews = [
        value.value
        for r in results
        for e in r.get_asset_materialization_events()
        for value in e.materialization.metadata.values()
        if isinstance(value, dg.MarkdownMetadataValue)
    ]
    previews += [
        value.value
        for r in results
        for e in r.get_asset_check_evaluations()
        for value in e.metadata.values()
        if isinstance(value, dg.MarkdownMetadataValue)
    ]
    assert any("birth_date" in p for p in previews) and any("has_diabetes" in p for p in previews)
    assert [cell for p in previews for cell in _clear_phi_cells(p)] == []


def test_the_scan_finds_phi_shown_in_clear():
    """The scanner itself: a table that shows a birth date and a diagnosis flag is caught."""
    leaked = "| member_id | birth_date | has_diabetes |\n| --- | --- | --- |\n| ********01 | 1950-01-15 | true |"
    assert _clear_phi_cells(leaked) == ["birth_date=1950-01-15", "has_diabetes=true"]
    masked = markdown_preview(["member_id", "birth_date", "has_diabetes"], [("M000000001", date(1950, 1, 15), True)])
    assert _clear_phi_cells(masked) == [] and "1950" not in masked and "M000000001" not in masked
