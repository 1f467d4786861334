"""Weekly model outputs for the plan's own contracts: the ordinal model's predictions under the seed's
reference calibration and the fitted parameters side by side (model.contract_predictions), and the
measure-level levers from CMS cut points (model.measure_levers).

Both read the week's gold.contract_measure_rates / gold.contract_projected_summary and replace that
week's rows in one transaction, so each table is a trajectory keyed by as_of_week_end. The work is in
stars_assets.lib.ordinal.contract_predictions, stars_assets.lib.cms.levers and
stars_assets.lib.ordinal.prediction_quality.
"""

from datetime import date

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from stars_assets.defs.automation import KEEP_CURRENT
from stars_assets.defs.gold.assets import (
    CONTRACT_MEASURE_RATES,
    CONTRACT_PROJECTED_SUMMARY,
    PROJECTION_CUT_POINTS,
    PROJECTION_CUT_POINTS_SQL,
    PROJECTION_STAR_YEAR,
    RULES_STAR_YEAR,
    week_end,
)
from stars_assets.defs.partitions import each_partition, range_run, week_metadata, weekly_partitions
from stars_assets.defs.tables import table_metadata
from stars_assets.lib.cms.levers import MEASURE_LEVERS as LEVERS
from stars_assets.lib.cms.levers import RANKING_RULE, measure_levers
from stars_assets.lib.cms.rating import rules_for
from stars_assets.lib.gold.contract_rates import improvement_stars_by_contract
from stars_assets.lib.ordinal import SEED, OrdinalParams, format_level
from stars_assets.lib.ordinal import prediction_quality as quality
from stars_assets.lib.ordinal.contract_predictions import PREDICTIONS, TRAJECTORY_SQL, contract_predictions
from stars_assets.lib.ordinal.quality import Verdict
from stars_assets.lib.tables import TableSpec
from stars_assets.lib.warehouse import in_transaction

OWNERS = ["team:stars-analytics"]
CONTRACT_PREDICTIONS = dg.AssetKey(["model", "contract_predictions"])
MEASURE_LEVERS = dg.AssetKey(["model", "measure_levers"])
STAR_RATING_MODEL = dg.AssetKey(["model", "star_rating_model"])
CUT_POINTS = PROJECTION_CUT_POINTS
MODEL_TABLE = "model.star_rating_model"
MODELS = ("seed", "fitted")
TOP_MEASURE_LEVERS = 3


def _markdown(frame: pd.DataFrame) -> dg.MetadataValue:
    # disable_numparse keeps each cell's own text (3.5, 0.412, "adherence +5") instead of one float format
    text = frame.astype(object).where(frame.notna(), "").to_markdown(index=False, disable_numparse=True)
    return dg.MetadataValue.md(text if len(frame) else "no rows this week")


def _read_week(conn, table: str, as_of: date) -> pd.DataFrame:
    return conn.execute(f"SELECT * FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of}).df()


def _replace_week(conn, spec: TableSpec, as_of: date, rows: pd.DataFrame) -> None:
    """Delete the week's rows and insert the new ones in one transaction."""
    table = spec.qualified_name
    conn.execute(spec.ddl())
    incoming = rows.assign(as_of_week_end=as_of)[spec.column_names]
    conn.register("incoming", incoming)
    try:
        with in_transaction(conn):
            conn.execute(f"DELETE FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of})
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    finally:
        conn.unregister("incoming")


def _check(name: str, verdict: Verdict, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=verdict.passed,
        description=verdict.description,
        metadata=verdict.metadata,
    )


def _weekly_table(key: dg.AssetKey, spec: TableSpec, deps: list[dg.AssetKey], checks: dict[str, str]) -> dict:
    """What the weekly model tables declare alike: partitions, automation, group, pool, column schema, blocking checks."""
    return {
        "key": key,
        "deps": deps,
        "automation_condition": KEEP_CURRENT,
        "group_name": "model",
        "kinds": {"duckdb", "pandas"},
        "owners": OWNERS,
        "metadata": table_metadata(spec),
        **range_run(weekly_partitions, key, checks),
    }


PREDICTION_CHECKS = {
    "check_validity_probabilities": "Per row with a prediction, P(rating = level) in [0, 1] summing to 1; rows without one name their missing inputs.",
    "check_validity_expected_stars": "Expected stars within the model's lowest and highest level; P(4+) in [0, 1].",
    "check_uniqueness_contract_model": "One row per contract and model (seed and fitted) for the week.",
}


def _lever_text(row, rank: int) -> str:
    lever = row[f"lever_{rank}"]
    if not isinstance(lever, str):
        return ""
    return f"{lever} {row[f'lever_{rank}_step']:+g}: {row[f'lever_{rank}_gain']:+.3f}"


def _prediction_overview(predictions: pd.DataFrame, trajectory: pd.DataFrame) -> pd.DataFrame:
    """Per contract: expected stars seed vs fitted, change since the previous week, P(4+), levers, CMS projection."""
    rows = []
    for contract_id, contract in predictions.groupby("contract_id"):
        by_model = contract.set_index("model")
        change = trajectory[(trajectory["contract_id"] == contract_id) & (trajectory["model"] == "fitted")]
        row = {"contract": contract_id}
        for model in MODELS:
            prediction = by_model.loc[model]
            row[f"E[stars] {model}"] = None if pd.isna(prediction["expected_stars"]) else round(prediction["expected_stars"], 2)
        last_change = change["expected_stars_change"].iloc[-1] if len(change) else None
        row["fitted vs last week"] = "" if last_change is None or pd.isna(last_change) else f"{last_change:+.2f}"
        for model in MODELS:
            p = by_model.loc[model, "p_four_plus"]
            row[f"P(4+) {model}"] = "" if pd.isna(p) else f"{p:.0%}"
        for model in MODELS:
            prediction = by_model.loc[model]
            row[f"levers {model}"] = "; ".join(text for text in (_lever_text(prediction, 1), _lever_text(prediction, 2)) if text)
        first = contract.iloc[0]
        row[f"CMS projected {PROJECTION_STAR_YEAR}"] = (
            "" if pd.isna(first["projected_summary"]) else format_level(first["projected_summary"])
        )
        chance = first.get("p_four_plus_cut_points")
        row["P(4+) cut points"] = "" if chance is None or pd.isna(chance) else f"{chance:.0%}"
        row["reward factor"] = "" if pd.isna(first["reward_factor"]) else f"{first['reward_factor']:g}"
        row["missing inputs"] = first["missing_inputs"] or ""
        rows.append(row)
    return pd.DataFrame(rows)


@dg.asset(
    description=(
        "Per plan contract and week, under the seed's reference calibration and the fitted model side by side "
        "(`model` = seed / fitted, both every week): the four model inputs from gold.contract_measure_rates, "
        "P(rating = level) for each level (one column per half star, null where a level is not the model's), "
        "expected stars, P(4+ stars) (the Quality Bonus Payment line), the two levers with the largest gain for the "
        "seed's one-year steps (+5 pp HEDIS, +0.3 CAHPS, +5 pp adherence, -2 pp readmission), and the CMS projected "
        "summary and reward factor from gold.contract_projected_summary. One long table keyed by "
        "(as_of_week_end, contract_id, model): the weekly trajectory is one query."
    ),
    **_weekly_table(
        CONTRACT_PREDICTIONS,
        PREDICTIONS,
        [CONTRACT_MEASURE_RATES, CONTRACT_PROJECTED_SUMMARY, STAR_RATING_MODEL],
        PREDICTION_CHECKS,
    ),
)
def contract_predictions_asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    yield from each_partition(context, lambda partition: _predictions_of_week(duckdb, week_end(partition)))


def _predictions_of_week(duckdb: DuckDBResource, as_of: date):
    with duckdb.get_connection() as conn:
        rates = _read_week(conn, "gold.contract_measure_rates", as_of)
        summaries = _read_week(conn, "gold.contract_projected_summary", as_of)
        fitted = OrdinalParams.from_parameter_table(conn.execute(f"SELECT * FROM {MODEL_TABLE}").df(), name="fitted")
        predictions = contract_predictions(rates, summaries, [SEED, fitted])
        _replace_week(conn, PREDICTIONS, as_of, predictions)
        written = _read_week(conn, PREDICTIONS.qualified_name, as_of)
        trajectory = conn.execute(TRAJECTORY_SQL).df()
    trajectory = trajectory[pd.to_datetime(trajectory["as_of_week_end"]).dt.date <= as_of]
    weeks = sorted(pd.to_datetime(trajectory["as_of_week_end"]).dt.date.unique())
    yield dg.MaterializeResult(
        asset_key=CONTRACT_PREDICTIONS,
        metadata={
            **week_metadata(as_of, len(written)),
            "contracts": int(written["contract_id"].nunique()),
            "contracts_missing_inputs": int(written.loc[written["missing_inputs"] != "", "contract_id"].nunique()),
            "models": list(MODELS),
            "fitted_levels": ", ".join(format_level(level) for level in fitted.levels),
            "weeks_in_trajectory": len(weeks),
            "by_contract": _markdown(_prediction_overview(written, trajectory)),
            "trajectory_sql": dg.MetadataValue.md(f"```sql\n{TRAJECTORY_SQL.strip()}\n```"),
        },
        check_results=[
            _check("check_validity_probabilities", quality.probabilities_sum_to_one(written), CONTRACT_PREDICTIONS),
            _check("check_validity_expected_stars", quality.expected_stars_within_levels(written), CONTRACT_PREDICTIONS),
            _check(
                "check_uniqueness_contract_model", quality.one_row_per_contract_and_model(written, MODELS), CONTRACT_PREDICTIONS
            ),
        ],
    )


LEVER_CHECKS = {
    "check_validity_distance": "Distances to the next cut point (published, and with CMS rounding) present and >= 0.",
    "check_validity_gain": (
        "Unrounded gain (weight / total weight) >= 0; rounded-summary gain >= 0 except where the higher star lowers the "
        "reward factor (reported in the metadata)."
    ),
    "check_uniqueness_contract_measure": "One lever per contract and measure for the week.",
}


def _top_levers(levers: pd.DataFrame, top: int = TOP_MEASURE_LEVERS) -> pd.DataFrame:
    best = levers[levers["lever_rank"] <= top].sort_values(["contract_id", "lever_rank"])
    if best.empty:
        return pd.DataFrame()
    direction = best["higher_is_better"].map({True: "+", False: "-"})
    codes = best["measure_code"].fillna(best["measure_id"])
    return pd.DataFrame(
        {
            "contract": best["contract_id"],
            "rank": best["lever_rank"],
            "measure": best["measure_id"].where(codes == best["measure_id"], best["measure_id"] + " " + codes),
            "stars": best["current_stars"].astype(str) + " -> " + best["next_stars"].astype(str),
            "rate": best["rate"].round(1),
            "cut point": best["threshold"].map("{:g}".format),
            "move to cut point": direction + best["distance"].round(2).astype(str),
            "gain (weight/total)": best["unrounded_gain"].round(3),
            "summary": best["summary_before"].map(format_level) + " -> " + best["summary_after"].map(format_level),
            "unrounded": best["summary_unrounded_before"].round(3).astype(str)
            + " -> "
            + best["summary_unrounded_after"].round(3).astype(str),
        }
    )


@dg.asset(
    description=(
        "Per plan contract, week and measure with a projected star below 5: the distance to the next CMS cut point in "
        "the measure's own units (to the published cut point, and to where CMS's rounding earns it), the gain in the "
        "projected summary if it were crossed (unrounded: weight / total weight; rounded: the half-star-rounded "
        f"projected summary recomputed with the measure one star higher, so the rounding shows), ranked: {RANKING_RULE}."
    ),
    **_weekly_table(MEASURE_LEVERS, LEVERS, [CONTRACT_MEASURE_RATES, CONTRACT_PROJECTED_SUMMARY, CUT_POINTS], LEVER_CHECKS),
)
def measure_levers_asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    yield from each_partition(context, lambda partition: _levers_of_week(duckdb, week_end(partition)))


def _levers_of_week(duckdb: DuckDBResource, as_of: date):
    rules = rules_for(RULES_STAR_YEAR)
    with duckdb.get_connection() as conn:
        rates = _read_week(conn, "gold.contract_measure_rates", as_of)
        summaries = _read_week(conn, "gold.contract_projected_summary", as_of)
        cut_points = conn.execute(PROJECTION_CUT_POINTS_SQL, {"year": PROJECTION_STAR_YEAR}).df()
        levers = measure_levers(rates, cut_points, rules, fixed_stars=improvement_stars_by_contract(summaries, RULES_STAR_YEAR))
        _replace_week(conn, LEVERS, as_of, levers)
        written = _read_week(conn, LEVERS.qualified_name, as_of)
    # The baseline each lever starts from is the gold projected summary, recomputed: they must agree.
    baseline = written.drop_duplicates("contract_id").set_index("contract_id")["summary_before"]
    gold = summaries.set_index("contract_id")["projected_summary"].reindex(baseline.index)
    yield dg.MaterializeResult(
        asset_key=MEASURE_LEVERS,
        metadata={
            **week_metadata(as_of, len(written)),
            "cut_points_star_year": PROJECTION_STAR_YEAR,
            "contracts": int(written["contract_id"].nunique()),
            "measures_at_five_stars": int((rates["projected_stars"] == 5).sum()),
            "levers_with_half_star_gain": int((written["rounded_gain"] > 0).sum()),
            "baseline_differs_from_gold_summary": int((baseline != gold).sum()),
            "ranking": RANKING_RULE,
            "top_levers": _markdown(_top_levers(written)),
        },
        check_results=[
            _check("check_validity_distance", quality.lever_distances_not_negative(written), MEASURE_LEVERS),
            _check("check_validity_gain", quality.lever_gains_not_negative(written), MEASURE_LEVERS),
            _check("check_uniqueness_contract_measure", quality.one_row_per_contract_and_measure(written), MEASURE_LEVERS),
        ],
    )
