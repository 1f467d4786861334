"""Contract predictions (seed and fitted side by side) and measure levers: the lib logic on hand-made
rows, then a real materialization of cms + model + the two weekly assets into a temp DuckDB whose gold
tables the test writes by hand."""

from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.definitions import defs
from stars_assets.defs.cms import assets as cms_assets
from stars_assets.defs.model import assets as model_assets
from stars_assets.defs.model import predictions
from stars_assets.defs.resources import build_resources
from stars_assets.lib.cms import forecast, tables
from stars_assets.lib.cms.rating import next_cut_point, rules_for
from stars_assets.lib.gold.contract_rates import project_measure_stars, project_summaries
from stars_assets.lib.ordinal import SEED, OrdinalParams
from stars_assets.lib.ordinal import prediction_quality as quality
from stars_assets.lib.ordinal.contract_predictions import (
    PREDICTION_COLUMN_NAMES,
    PROBABILITY_COLUMNS,
    TRAJECTORY_SQL,
    contract_predictions,
)

RULES_2026 = rules_for(2026)

WEEK_1, WEEK_2 = "2026-03-01", "2026-03-08"  # Sundays; the snapshots are as of the Saturdays after
AS_OF_1, AS_OF_2 = date(2026, 3, 7), date(2026, 3, 14)
CAHPS = {"C22": 83, "C23": 81, "C24": 90, "C26": 86, "C27": 87, "D05": 87, "D06": 89}

# Two of the plan's contracts: H1111 a solid 4-star-ish plan, H2222 weaker with high readmissions.
WEEK_1_RATES = {
    "H1111": {"C01": 77, "C02": 72, "C11": 81, "C12": 86, "C14": 78, "C20": 65, "C18": 9.6, "D08": 88.4, "D09": 90, "D10": 89}
    | CAHPS,
    "H2222": {
        "C01": 68,
        "C02": 60,
        "C11": 70,
        "C12": 75,
        "C14": 70,
        "C20": 50,
        "C18": 12.4,
        "D08": 84,
        "D09": 86,
        "D10": 85,
        "C22": 79,
        "C23": 78,
        "C24": 88,
        "C26": 85,
    },
}
# A week later both contracts closed gaps: H1111's D08 crosses 89, H2222's C12 crosses 77.
WEEK_2_RATES = {
    "H1111": WEEK_1_RATES["H1111"] | {"D08": 89.2, "C01": 78},
    "H2222": WEEK_1_RATES["H2222"] | {"C12": 77.5, "C18": 11.8},
}


@pytest.fixture(scope="module")
def cut_points(cms_history) -> pd.DataFrame:
    """The cut points the weekly assets rate the plan with: the 2028 forecast (cms.projection_cut_points)."""
    return forecast.projection_cut_points(cms_history, tables.cut_points(settings.cms_reference_dir(2026)), 2028)


def gold_rows(cut_points: pd.DataFrame, contracts: dict[str, dict[str, float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """gold.contract_measure_rates and gold.contract_projected_summary rows, through the gold lib functions."""
    counts = pd.DataFrame(
        [
            (contract_id, measure_id, measure_id, "test", rate * 10, 1000.0, float(rate))
            for contract_id, measures in contracts.items()
            for measure_id, rate in measures.items()
        ],
        columns=["contract_id", "measure_id", "measure_code", "source", "numerator", "denominator", "rate"],
    )
    rates = project_measure_stars(counts, cut_points, RULES_2026)
    return rates, project_summaries(rates, RULES_2026)


# --- lib: contract_predictions ------------------------------------------------------------------

HALF_STAR_MODEL = OrdinalParams(
    name="fitted",
    levels=(2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
    cuts=(68.0, 73.0, 77.5, 80.5, 84.0),
    betas={"hedis": 0.27, "cahps": 2.5, "adherence": 0.55, "readmission": -0.13},
)


def test_one_row_per_contract_and_model_with_the_models_own_levels(cut_points):
    rates, summaries = gold_rows(cut_points, WEEK_1_RATES | {"H3333": {"C01": 70, "C18": 10}})
    table = contract_predictions(rates, summaries, [SEED, HALF_STAR_MODEL])
    assert list(table.columns) == PREDICTION_COLUMN_NAMES[1:]
    assert len(table) == 6 and set(table["model"]) == {"seed", "fitted"}
    seed = table[table["model"] == "seed"].set_index("contract_id")
    fitted = table[table["model"] == "fitted"].set_index("contract_id")
    # The seed has whole-star levels, the half-star model no 1, 1.5 or 2: those columns stay null.
    assert seed.loc["H1111", ["p_stars_1_5", "p_stars_2_5", "p_stars_4_5"]].isna().all()
    assert fitted.loc["H1111", ["p_stars_1", "p_stars_1_5", "p_stars_2"]].isna().all()
    assert (seed.loc["H1111", "lowest_level"], fitted.loc["H1111", "lowest_level"]) == (1.0, 2.5)
    sums = table.dropna(subset=["expected_stars"])[PROBABILITY_COLUMNS].fillna(0).sum(axis=1)
    assert sums.tolist() == pytest.approx([1.0] * 4)
    # H3333 has no CAHPS, too few HEDIS and no adherence rates: kept, named, not predicted.
    assert seed.loc["H3333", "missing_inputs"] == "hedis,cahps,adherence"
    assert pd.isna(seed.loc["H3333", "expected_stars"]) and pd.isna(seed.loc["H3333", "lever_1"])
    # The stronger contract is predicted higher by both models; levers carry the seed's steps.
    for model in (seed, fitted):
        assert model.loc["H1111", "expected_stars"] > model.loc["H2222", "expected_stars"]
        assert model.loc["H1111", "p_four_plus"] > model.loc["H2222", "p_four_plus"]
    steps = {"hedis": 5.0, "cahps": 0.3, "adherence": 5.0, "readmission": -2.0}
    assert seed.loc["H1111", "lever_1_step"] == steps[seed.loc["H1111", "lever_1"]]
    assert seed.loc["H1111", "lever_1_gain"] >= seed.loc["H1111", "lever_2_gain"] > 0
    # The CMS projection comes along from gold.contract_projected_summary.
    assert seed.loc["H1111", "projected_summary"] == summaries.set_index("contract_id").loc["H1111", "projected_summary"]


def test_prediction_checks_catch_bad_rows(cut_points):
    rates, summaries = gold_rows(cut_points, WEEK_1_RATES)
    table = contract_predictions(rates, summaries, [SEED, HALF_STAR_MODEL])
    assert quality.probabilities_sum_to_one(table).passed
    assert quality.expected_stars_within_levels(table).passed
    assert quality.one_row_per_contract_and_model(table, ["seed", "fitted"]).passed
    assert not quality.probabilities_sum_to_one(table.assign(p_stars_5=table["p_stars_5"] + 0.1)).passed
    assert not quality.expected_stars_within_levels(table.assign(expected_stars=0.5)).passed
    assert not quality.one_row_per_contract_and_model(table[table["model"] == "seed"], ["seed", "fitted"]).passed
    assert not quality.one_row_per_contract_and_model(pd.concat([table, table.head(1)]), ["seed", "fitted"]).passed


# --- materialized for real ------------------------------------------------------------------------

UPSTREAM = [
    cms_assets.measure_scores,
    cms_assets.measure_stars,
    cms_assets.summary_ratings,
    cms_assets.cut_points,
    cms_assets.cai,
    cms_assets.projection_cut_points,
    model_assets.cms_training_set,
    model_assets.star_rating_model,
]
WEEKLY = [predictions.contract_predictions_asset, predictions.measure_levers_asset]


def write_gold_week(warehouse, cut_points, as_of: date, contracts) -> None:
    rates, summaries = gold_rows(cut_points, contracts)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS gold")
        for table, frame in (("gold.contract_measure_rates", rates), ("gold.contract_projected_summary", summaries)):
            frame = frame.assign(as_of_week_end=as_of)
            conn.register("incoming", frame)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
            conn.execute(f"DELETE FROM {table} WHERE as_of_week_end = $week", {"week": as_of})
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
            conn.unregister("incoming")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, cut_points):
    root = tmp_path_factory.mktemp("predictions")
    path = root / "warehouse.duckdb"
    resources = build_resources(warehouse=str(path), landing=str(root / "landing"))
    write_gold_week(path, cut_points, AS_OF_1, WEEK_1_RATES)
    upstream = dg.materialize(UPSTREAM, resources=resources)
    assert upstream.success
    runs = [dg.materialize(WEEKLY, partition_key=WEEK_1, resources=resources)]
    write_gold_week(path, cut_points, AS_OF_2, WEEK_2_RATES)
    runs.append(dg.materialize(WEEKLY, partition_key=WEEK_2, resources=resources))
    runs.append(dg.materialize(WEEKLY, partition_key=WEEK_1, resources=resources))  # a rerun replaces its week
    return path, runs


def query(warehouse, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql).df()


def test_runs_succeed_and_every_check_passes(warehouse):
    _, runs = warehouse
    for run in runs:
        assert run.success
        evaluations = run.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == set(predictions.PREDICTION_CHECKS) | set(predictions.LEVER_CHECKS)
        assert all(e.passed for e in evaluations), [(e.check_name, e.description) for e in evaluations if not e.passed]


def test_seed_and_fitted_rows_every_week_and_probabilities_sum_to_one(warehouse):
    path, _ = warehouse
    table = query(path, "SELECT * FROM model.contract_predictions ORDER BY as_of_week_end, contract_id, model")
    assert len(table) == 8  # 2 weeks x 2 contracts x 2 models: the rerun of week 1 replaced its rows
    keys = table.groupby(["as_of_week_end", "contract_id"])["model"].apply(sorted)
    assert all(models == ["fitted", "seed"] for models in keys)
    assert (table["missing_inputs"] == "").all()
    sums = table[PROBABILITY_COLUMNS].fillna(0).sum(axis=1)
    assert sums.tolist() == pytest.approx([1.0] * len(table))
    fitted = table[table["model"] == "fitted"]
    assert (fitted["lowest_level"] == 2.5).all() and fitted["p_stars_1"].isna().all()  # the 2026 fit's levels
    assert table["reward_factor"].notna().all() and table["lever_1"].notna().all()


def test_trajectory_over_two_weeks_is_one_query(warehouse):
    path, _ = warehouse
    trajectory = query(path, TRAJECTORY_SQL)
    assert sorted(pd.to_datetime(trajectory["as_of_week_end"]).dt.date.unique()) == [AS_OF_1, AS_OF_2]
    assert len(trajectory) == 8
    second = trajectory[pd.to_datetime(trajectory["as_of_week_end"]).dt.date == AS_OF_2]
    assert second["expected_stars_change"].notna().all()
    # Closing gaps moved every contract up under both models.
    assert (second["expected_stars_change"] > 0).all()


def test_measure_levers_table_and_metadata(warehouse, cut_points):
    path, runs = warehouse
    levers = query(path, "SELECT * FROM model.measure_levers ORDER BY as_of_week_end, contract_id, lever_rank")
    assert set(pd.to_datetime(levers["as_of_week_end"]).dt.date) == {AS_OF_1, AS_OF_2}
    week_1 = levers[pd.to_datetime(levers["as_of_week_end"]).dt.date == AS_OF_1].set_index(["contract_id", "measure_id"])
    # Distances to the next forecast (2028) cut point, in the measure's units.
    d08 = next_cut_point("D08", WEEK_1_RATES["H1111"]["D08"], cut_points)
    c18 = next_cut_point("C18", WEEK_1_RATES["H2222"]["C18"], cut_points)
    assert week_1.loc[("H1111", "D08"), "distance"] == pytest.approx(d08.threshold - 88.4)
    assert week_1.loc[("H2222", "C18"), "distance"] == pytest.approx(12.4 - c18.threshold)
    assert not week_1.loc[("H2222", "C18"), "higher_is_better"]
    assert (levers["distance"] >= 0).all() and (levers["unrounded_gain"] > 0).all()
    assert (levers.groupby(["as_of_week_end", "contract_id"])["lever_rank"].min() == 1).all()
    # The lever baseline is gold's projected summary, recomputed.
    gold = query(path, "SELECT as_of_week_end, contract_id, projected_summary FROM gold.contract_projected_summary")
    merged = levers.drop_duplicates(["as_of_week_end", "contract_id"]).merge(gold, on=["as_of_week_end", "contract_id"])
    assert (merged["summary_before"] == merged["projected_summary"]).all() and len(merged) == 4
    (event,) = [e for e in runs[1].get_asset_materialization_events() if e.asset_key == predictions.MEASURE_LEVERS]
    metadata = event.materialization.metadata
    assert metadata["baseline_differs_from_gold_summary"].value == 0
    assert metadata["top_levers"].value.count("| H1111 ") == 3


def test_prediction_metadata_shows_seed_and_fitted_per_contract(warehouse):
    _, runs = warehouse
    (event,) = [e for e in runs[1].get_asset_materialization_events() if e.asset_key == predictions.CONTRACT_PREDICTIONS]
    metadata = event.materialization.metadata
    overview = metadata["by_contract"].value
    assert "E[stars] seed" in overview and "E[stars] fitted" in overview and "P(4+) fitted" in overview
    assert "| H1111 " in overview and "| H2222 " in overview
    assert metadata["weeks_in_trajectory"].value == 2 and metadata["dagster/row_count"].value == 4


def test_the_code_location_discovers_both_weekly_assets():
    repository = defs().get_repository_def()
    graph = repository.asset_graph
    for key in (predictions.CONTRACT_PREDICTIONS, predictions.MEASURE_LEVERS):
        node = graph.get(key)
        assert node.group_name == "model" and node.owners == ["team:stars-analytics"]
        assert node.partitions_def == predictions.weekly_partitions
    assert graph.get(predictions.CONTRACT_PREDICTIONS).parent_keys == {
        predictions.CONTRACT_MEASURE_RATES,
        predictions.CONTRACT_PROJECTED_SUMMARY,
        predictions.STAR_RATING_MODEL,
    }
    assert predictions.CUT_POINTS in graph.get(predictions.MEASURE_LEVERS).parent_keys
