"""The model assets materialized for real: CMS tables -> training set -> fitted model, into a temp DuckDB."""

import dagster as dg
import duckdb
import pytest

from stars_assets.definitions import defs
from stars_assets.defs.cms import assets as cms_assets
from stars_assets.defs.model import assets as model_assets
from stars_assets.defs.model import checks as model_checks
from stars_assets.defs.resources import build_resources
from stars_assets.lib.ordinal import OrdinalParams

MODEL_CHECKS = [
    model_checks.check_validity_fit_converged,
    model_checks.check_validity_coefficient_signs,
    model_checks.check_accuracy_cv_within_half_star,
]


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    warehouse = root / "warehouse.duckdb"
    result = dg.materialize(
        [
            cms_assets.measure_scores,
            cms_assets.measure_stars,
            cms_assets.summary_ratings,
            model_assets.cms_training_set,
            model_assets.star_rating_model,
            *MODEL_CHECKS,
        ],
        resources=build_resources(warehouse=str(warehouse), landing=str(root / "landing")),
    )
    return result, warehouse


def metadata_of(result: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def test_materialize_succeeds_and_every_check_passes(materialized):
    result, _ = materialized
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {check.check_key.name for check in MODEL_CHECKS}
    assert all(evaluation.passed for evaluation in evaluations.values())
    assert evaluations["check_validity_coefficient_signs"].metadata["n_wrong_sign"].value == 0


def test_training_set_table_and_its_counts(materialized):
    result, warehouse = materialized
    metadata = metadata_of(result, ["model", "cms_training_set"])
    assert metadata["dagster/row_count"] == 444
    assert metadata["n_rated_contracts"] == 516 and metadata["n_dropped_contracts"] == 72
    assert metadata["n_dropped_missing_readmission"] == 47 and metadata["n_dropped_missing_cahps"] == 31
    assert metadata["label_merge"] == {"min_contracts_per_level": 10, "merged_ratings": {"2": "2.5"}}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        counts = connection.execute(
            "select count(*), count(distinct contract_id), count(hedis), count(cahps), count(adherence), count(readmission)"
            " from model.cms_training_set"
        ).fetchone()
    assert counts == (444,) * 6


def test_model_table_and_metadata(materialized):
    result, warehouse = materialized
    metadata = metadata_of(result, ["model", "star_rating_model"])
    assert metadata["converged"] is True
    assert metadata["cv_within_half_star_accuracy"] > metadata["baseline_within_half_star_accuracy"]
    assert metadata["cv_exact_accuracy"] > metadata["baseline_exact_accuracy"]
    for section in ("coefficients", "cut_points", "confusion_matrix", "calibration_by_level"):
        assert metadata[section].startswith("|")
    assert "seed_value" in metadata["coefficients"]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        table = connection.execute("select * from model.star_rating_model").df()
    assert set(table["kind"]) == {"beta", "cut", "statistic"}
    params = OrdinalParams.from_parameter_table(table)
    assert params.levels == (2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
    assert params.betas["readmission"] < 0 < params.betas["cahps"]


def test_the_code_location_discovers_the_model_assets_and_checks():
    repository = defs().get_repository_def()
    keys = repository.asset_graph.get_all_asset_keys()
    assert {dg.AssetKey(["model", "cms_training_set"]), dg.AssetKey(["model", "star_rating_model"])} <= keys
    model_spec = repository.asset_graph.get(dg.AssetKey(["model", "star_rating_model"]))
    assert model_spec.group_name == "model"
    assert {"statsmodels", "pandas", "duckdb"} <= set(model_spec.kinds)
    assert model_spec.owners == ["team:stars-analytics"]
    check_names = {key.name for key in repository.asset_graph.asset_check_keys}
    assert {check.check_key.name for check in MODEL_CHECKS} <= check_names
