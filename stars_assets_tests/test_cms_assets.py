"""The cms assets and checks, materialized for real into a temporary DuckDB warehouse."""

import dagster as dg
import duckdb
import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.defs.cms import assets, checks
from stars_assets.defs.resources import build_resources
from stars_assets.lib.cms import rating, reproduction, tables

YEAR_DIR = settings.cms_reference_dir(2026)
CMS_ASSETS = [
    assets.measure_scores,
    assets.measure_stars,
    assets.summary_ratings,
    assets.cut_points,
    assets.cai,
    assets.overall_ratings_recomputed,
]
CMS_CHECKS = [
    checks.check_reproduction_overall_rating,
    checks.check_validity_measure_stars,
    checks.check_completeness_cut_points,
    checks.check_uniqueness_contract_id,
]
# Contracts x measures of the published 2023-2026 tables (874x40, 857x42, 789x42, 769x45); CAI is published
# for 2025 and 2026; CMS's cut-point files only for 2026.
EXPECTED_ROWS = {
    "measure_scores": 35000 + 35994 + 33138 + 34605,
    "measure_stars": 35000 + 35994 + 33138 + 34605,
    "summary_ratings": 875 + 857 + 789 + 769,
    "cut_points": 285,
    "cai": 762 + 769,
    "overall_ratings_recomputed": 2733,
}
PUBLISHED_OVERALL = {2023: 507, 2024: 545, 2025: 521, 2026: 516}


@pytest.fixture(scope="module")
def materialized(tmp_path_factory) -> tuple[dg.ExecuteInProcessResult, str]:
    folder = tmp_path_factory.mktemp("cms_warehouse")
    warehouse = str(folder / "w.duckdb")
    result = dg.materialize(
        [*CMS_ASSETS, *CMS_CHECKS], resources=build_resources(warehouse=warehouse, landing=str(folder / "landing"))
    )
    return result, warehouse


def test_materialize_writes_every_cms_table(materialized):
    result, warehouse = materialized
    assert result.success
    with duckdb.connect(warehouse, read_only=True) as connection:
        for table, rows in EXPECTED_ROWS.items():
            assert connection.execute(f"select count(*) from cms.{table}").fetchone()[0] == rows, table
        # NaN scores land as SQL NULL, so analysts can filter with IS NULL.
        assert (
            connection.execute("select count(*) from cms.measure_scores where value is null and reason is null").fetchone()[0]
            == 0
        )


def test_materialization_metadata(materialized):
    result, _ = materialized
    events = {event.asset_key.path[-1]: event.materialization.metadata for event in result.get_asset_materialization_events()}
    assert events["measure_stars"]["dagster/row_count"].value == EXPECTED_ROWS["measure_stars"]
    assert events["measure_stars"]["star_years"].value == [2023, 2024, 2025, 2026]
    assert events["measure_scores"]["reason_counts"].value["data_issue"] > 0
    assert "measure_id" in events["cut_points"]["preview"].value and "C01" in events["cut_points"]["preview"].value
    recomputation = events["overall_ratings_recomputed"]
    assert recomputation["published_numeric_ratings"].value == sum(PUBLISHED_OVERALL.values())
    by_year = recomputation["reproduction_by_year"].value
    assert all(str(year) in by_year for year in PUBLISHED_OVERALL)


def test_every_check_passed(materialized):
    result, _ = materialized
    evaluations = {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}
    assert set(evaluations) == {check.check_key.name for check in CMS_CHECKS}
    assert all(evaluation.passed for evaluation in evaluations.values())
    reproduction_check = evaluations["check_reproduction_overall_rating"]
    assert reproduction_check.metadata["years_failing"].value == []
    assert reproduction_check.metadata["published_numeric_ratings"].value == sum(PUBLISHED_OVERALL.values())


def test_asset_definitions_follow_the_conventions():
    for asset in CMS_ASSETS:
        spec = next(iter(asset.specs))
        assert spec.key.path[0] == "cms" and spec.group_name == "cms"
        assert spec.kinds == {"pandas", "duckdb"} and spec.owners == ["team:stars-analytics"]
        assert spec.description
        assert isinstance(spec.metadata["dagster/column_schema"], dg.TableSchema)
    assert all(next(iter(check.check_specs)).blocking for check in CMS_CHECKS)


def test_cms_definitions_are_discovered():
    from stars_assets.definitions import defs

    graph = defs().resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {f"cms/{name}" for name in EXPECTED_ROWS} <= keys
    check_names = {key.name for key in graph.asset_check_keys if key.asset_key.path[0] == "cms"}
    assert check_names == {check.check_key.name for check in CMS_CHECKS}


# --- the checks can fail -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published_and_recomputed() -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = tables.summary_ratings(YEAR_DIR)
    recomputed = rating.overall_ratings(tables.measure_stars(YEAR_DIR), tables.cai(YEAR_DIR), summary)
    return summary, recomputed


def test_reproduction_check_fails_on_wrong_ratings(published_and_recomputed):
    summary, recomputed = published_and_recomputed
    published_ids = summary.dropna(subset=["overall"])["contract_id"]
    broken_ids = published_ids.iloc[::50].tolist()
    wrong = recomputed.copy()
    wrong.loc[wrong["contract_id"].isin(broken_ids), "overall_rating"] -= 0.5
    result = checks.check_reproduction_overall_rating(wrong, summary)
    assert not result.passed
    assert result.metadata["mismatch_count"].value == len(broken_ids) == 11
    assert result.metadata["matches"].value == 516 - len(broken_ids)
    assert all(contract in result.metadata["mismatches"].value for contract in broken_ids)


def test_reproduction_check_fails_when_contracts_are_missing(published_and_recomputed):
    summary, recomputed = published_and_recomputed
    report = reproduction.compare_overall_ratings(recomputed.iloc[10:], summary)
    assert not report.passed()
    assert report.mismatches["recomputed"].isna().sum() == len(report.mismatches) > 0


def test_reproduction_passes_at_the_threshold_and_fails_below(published_and_recomputed):
    summary, recomputed = published_and_recomputed
    published_ids = summary.dropna(subset=["overall"])["contract_id"]
    for wrong_count, passes in [(5, True), (6, False)]:  # 511/516 = 99.03%, 510/516 = 98.84%
        wrong = recomputed.copy()
        wrong.loc[wrong["contract_id"].isin(published_ids.iloc[:wrong_count]), "overall_rating"] += 0.5
        assert reproduction.compare_overall_ratings(wrong, summary).passed() is passes


def test_validity_check_fails_on_stars_out_of_range():
    stars = tables.measure_stars(YEAR_DIR).head(100).copy()
    stars.loc[stars["stars"].notna().idxmax(), "stars"] = 6
    stars.loc[stars["stars"].isna().idxmax(), "reason"] = None
    result = checks.check_validity_measure_stars(stars)
    assert not result.passed
    assert result.metadata["stars_out_of_range"].value == 1
    assert result.metadata["rows_with_both_or_neither_stars_and_reason"].value == 1


def test_completeness_check_fails_when_a_measure_has_no_cut_points():
    stars = tables.measure_stars(YEAR_DIR)
    cut_points = tables.cut_points(YEAR_DIR)
    result = checks.check_completeness_cut_points(cut_points[cut_points["measure_id"] != "C01"], stars)
    assert not result.passed
    assert "C01" in result.metadata["examples"].value


def test_uniqueness_check_fails_on_duplicate_contracts():
    summary = tables.summary_ratings(YEAR_DIR)
    result = checks.check_uniqueness_contract_id(pd.concat([summary, summary.head(2)]))
    assert not result.passed
    assert result.metadata["duplicate_rows"].value == 4
