"""`stars-predict` run as a real subprocess, the way an analyst runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from stars_assets import settings
from stars_assets.lib.cms import tables
from stars_assets.lib.ordinal import SEED, OrdinalParams, cross_validate, fit, levers, parameter_table, predict, training_set

STARS_PREDICT = Path(sys.executable).parent / "stars-predict"
EXAMPLE = ["--hedis", "72", "--cahps", "3.6", "--adherence", "86", "--readmission", "14"]
EXAMPLE_INPUTS = {"hedis": 72.0, "cahps": 3.6, "adherence": 86.0, "readmission": 14.0}


def run(*args: str, warehouse: Path) -> subprocess.CompletedProcess:
    # STARS_WAREHOUSE keeps the command away from the developer's own warehouse.
    env = os.environ | {"STARS_WAREHOUSE": str(warehouse)}
    return subprocess.run([str(STARS_PREDICT), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def no_warehouse(tmp_path) -> Path:
    return tmp_path / "absent.duckdb"


def test_text_output(no_warehouse):
    result = run(*EXAMPLE, warehouse=no_warehouse)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    prediction = predict(SEED, EXAMPLE_INPUTS)
    assert "model: seed" in out
    for level, p in prediction.probabilities.iloc[0].items():
        assert f"{level:g}" in out and f"{p:.1%}" in out
    assert f"expected rating   {prediction.expected_stars.iloc[0]:.2f} stars" in out
    assert f"P(4+ stars)       {prediction.p_four_plus.iloc[0]:.1%}" in out
    assert "1. CAHPS member satisfaction +0.3 stars" in out and "2. HEDIS composite rate +5 pp" in out


def test_json_output_matches_the_library(no_warehouse):
    result = run(*EXAMPLE, "--json", warehouse=no_warehouse)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"probabilities", "expected_stars", "p_four_plus", "levers"} <= set(report)
    prediction = predict(SEED, EXAMPLE_INPUTS)
    assert report["probabilities"] == pytest.approx({f"{level:g}": p for level, p in prediction.probabilities.iloc[0].items()})
    assert sum(report["probabilities"].values()) == pytest.approx(1.0)
    assert report["expected_stars"] == pytest.approx(prediction.expected_stars.iloc[0])
    assert report["p_four_plus"] == pytest.approx(prediction.p_four_plus.iloc[0])
    expected_levers = levers(SEED, EXAMPLE_INPUTS)
    assert [lever["input"] for lever in report["levers"]] == list(expected_levers["input"])
    assert [lever["gain"] for lever in report["levers"]] == pytest.approx(list(expected_levers["gain"]))


@pytest.fixture(scope="module")
def fitted_2026():
    year_dir = settings.cms_reference_dir(2026)
    training = training_set(tables.measure_scores(year_dir), tables.measure_stars(year_dir), tables.summary_ratings(year_dir))
    return fit(training.frame), training.frame


def test_model_fitted_without_a_warehouse_fits_on_the_cms_tables(no_warehouse, fitted_2026):
    result = run(*EXAMPLE, "--model", "fitted", "--json", warehouse=no_warehouse)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "fitted" and "CMS 2026 tables" in report["model_source"]
    assert list(report["probabilities"]) == ["2.5", "3", "3.5", "4", "4.5", "5"]
    assert report["expected_stars"] == pytest.approx(predict(fitted_2026[0].params, EXAMPLE_INPUTS).expected_stars.iloc[0])


def test_model_fitted_reads_the_parameters_the_model_asset_stored(tmp_path, fitted_2026):
    result, frame = fitted_2026
    table = parameter_table(result, cross_validate(frame))
    # A parameter set that differs from a fresh fit, so the test can tell which one was used.
    table.loc[(table["kind"] == "beta") & (table["name"] == "cahps"), "estimate"] = 3.0
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("create schema model")
        connection.register("parameters", table)
        connection.execute("create table model.star_rating_model as select * from parameters")
    report = json.loads(run(*EXAMPLE, "--model", "fitted", "--json", warehouse=warehouse).stdout)
    assert report["model_source"] == "warehouse table model.star_rating_model"
    stored = OrdinalParams.from_parameter_table(table)
    assert report["expected_stars"] == pytest.approx(predict(stored, EXAMPLE_INPUTS).expected_stars.iloc[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cahps", "3.6", "--adherence", "86", "--readmission", "14"], "the following arguments are required: --hedis"),
        (
            ["--hedis", "140", "--cahps", "3.6", "--adherence", "86", "--readmission", "14"],
            "hedis = 140 is outside its valid range 0..100",
        ),
        (
            ["--hedis", "72", "--cahps", "6", "--adherence", "86", "--readmission", "14"],
            "cahps = 6 is outside its valid range 1..5",
        ),
        (["--hedis", "abc", "--cahps", "3.6", "--adherence", "86", "--readmission", "14"], "invalid float value: 'abc'"),
        (["--hedis", "nan", "--cahps", "3.6", "--adherence", "86", "--readmission", "14"], "hedis"),
        ([*EXAMPLE, "--model", "best"], "invalid choice: 'best'"),
    ],
)
def test_invalid_inputs_exit_with_status_2(no_warehouse, args, message):
    result = run(*args, warehouse=no_warehouse)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
