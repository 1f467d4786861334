"""Gold: weekly "as of week end" facts for analysts and leadership."""

from datetime import date, timedelta

import dagster as dg
from dagster_duckdb import DuckDBResource

from stars_assets.defs.automation import KEEP_CURRENT
from stars_assets.defs.partitions import (
    each_partition,
    range_run,
    week_metadata,
    weekly_partitions,
)
from stars_assets.defs.tables import table_metadata
from stars_assets.lib.cms.forecast import PROJECTION_YEARS_AHEAD
from stars_assets.lib.cms.rating import rules_for
from stars_assets.lib.cms.tables import available_star_years
from stars_assets.lib.gold import quality
from stars_assets.lib.gold.contract_rates import project_improvement, project_measure_stars, project_summaries
from stars_assets.lib.gold.facts import (
    CAMPAIGN_EFFECTIVENESS_SQL,
    CARE_GAP_CLOSURE_SQL,
    CONTRACT_MEASURE_COUNTS_SQL,
    CONTRACT_PRIOR_YEAR_SQL,
    CONTRACT_QUALITY_SQL,
    GOLD_DDL,
)
from stars_assets.lib.gold.pdc import MEMBER_PDC_SQL, adherence_measure_parameters, pdc_parameters
from stars_assets.lib.gold.tables import GOLD_TABLES
from stars_assets.lib.masking import markdown_preview
from stars_assets.lib.warehouse import in_transaction

OWNERS = ["team:stars-analytics"]
SILVER = {name: dg.AssetKey(["silver", name]) for name in ("members", "care_gaps", "rx_fills", "outreach_events", "appointments")}
CARE_GAP_CLOSURE = dg.AssetKey(["gold", "care_gap_closure"])
CAMPAIGN_EFFECTIVENESS = dg.AssetKey(["gold", "campaign_effectiveness"])
CONTRACT_MEASURE_RATES = dg.AssetKey(["gold", "contract_measure_rates"])
CONTRACT_PROJECTED_SUMMARY = dg.AssetKey(["gold", "contract_projected_summary"])
# The plan's measurement-year data is rated in PROJECTION_STAR_YEAR (2028 for 2026), under the forecast cut points
# (cms.projection_cut_points) and the newest rules the project carries.
RULES_STAR_YEAR = max(available_star_years())
PROJECTION_STAR_YEAR = RULES_STAR_YEAR + PROJECTION_YEARS_AHEAD
PROJECTION_CUT_POINTS = dg.AssetKey(["cms", "projection_cut_points"])


PROJECTION_CUT_POINTS_SQL = "SELECT * FROM cms.projection_cut_points WHERE star_year = $year"


def _forecast_error(cut_points) -> tuple[float, float | None]:
    """(centre, spread) of the simulated cut-point error: the forecast's back-test spread, carried on every
    projection_cut_points row, centred on the forecast itself. Centring on the back-test's mean error (+2.45
    points two years ahead) was tried on 2024 -> 2026 and gave P(4+) a Brier score of 0.22 against 0.09 centred."""
    if "forecast_error_sd" not in cut_points or cut_points.empty:
        return 0.0, None
    return 0.0, float(cut_points["forecast_error_sd"].iloc[0])


def _from(*sources: tuple[str, str]) -> list[dg.TableColumnDep]:
    return [dg.TableColumnDep(asset_key=SILVER[table], column_name=column) for table, column in sources]


# Which silver columns each gold column is computed from (shown in the UI's column lineage).
CARE_GAP_CLOSURE_LINEAGE = dg.TableColumnLineage(
    deps_by_column={
        "gap_id": _from(("care_gaps", "gap_id")),
        "member_id": _from(("care_gaps", "member_id")),
        "contract_id": _from(("members", "contract_id")),
        "region": _from(("members", "region")),
        "measure_code": _from(("care_gaps", "measure_code")),
        "open_date": _from(("care_gaps", "open_date")),
        "close_date": _from(("care_gaps", "close_date")),
        "days_to_close": _from(("care_gaps", "open_date"), ("care_gaps", "close_date")),
        "touches_total": _from(
            ("outreach_events", "event_id"), ("outreach_events", "measure_codes"), ("outreach_events", "event_ts")
        ),
        "reaching_touches": _from(("outreach_events", "event_type"), ("outreach_events", "event_ts")),
        "attributed_channel": _from(
            ("outreach_events", "channel"),
            ("outreach_events", "event_type"),
            ("outreach_events", "event_ts"),
            ("care_gaps", "close_date"),
        ),
        "appointments_booked": _from(("appointments", "appointment_key"), ("appointments", "booked_ts")),
        "appointments_completed": _from(("appointments", "status")),
    }
)
CAMPAIGN_EFFECTIVENESS_LINEAGE = dg.TableColumnLineage(
    deps_by_column={
        "channel": _from(("outreach_events", "channel")),
        "region": _from(("members", "region")),
        "contract_id": _from(("members", "contract_id")),
        "dual_lis_cohort": _from(("members", "dual_status"), ("members", "lis_status")),
        "age_band": _from(("members", "birth_date")),
        "measure_code": _from(("care_gaps", "measure_code")),
        "members_targeted": _from(("outreach_events", "member_id")),
        "attempts": _from(("outreach_events", "event_id")),
        "reach_rate": _from(("outreach_events", "event_type")),
        "appointment_show_rate": _from(("appointments", "status")),
        "closure_rate_30d": _from(("outreach_events", "event_ts"), ("care_gaps", "close_date")),
        "members_opted_out": _from(("outreach_events", "event_type")),
        "chronic_condition": _from(
            ("members", "has_diabetes"), ("members", "has_hypertension"), ("members", "has_hyperlipidemia")
        ),
        "members_engaged": _from(("outreach_events", "event_type")),
        "appointments_booked": _from(("appointments", "booked_ts")),
        "gaps_closed": _from(("care_gaps", "close_date")),
    }
)


def week_end(partition_key: str) -> date:
    """Weeks start on Sunday; the snapshot is as of the Saturday that ends the week."""
    return date.fromisoformat(partition_key) + timedelta(days=6)


def _replace_week(conn, table: str, as_of: date, insert_sql: str) -> int:
    with in_transaction(conn):
        conn.execute(f"DELETE FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of})
        conn.execute(insert_sql, {"week_end": as_of})
    return conn.execute(f"SELECT count(*) FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of}).fetchone()[0]


FACT_DEPS = [SILVER["care_gaps"], SILVER["members"], SILVER["outreach_events"], SILVER["appointments"]]


def _weekly_fact(
    key: dg.AssetKey,
    description: str,
    insert_sql: str,
    contract,
    unique_check: str,
    unique_key: list[str],
    lineage: dg.TableColumnLineage,
    summary_sql: str,
    summary_columns: list[str],
) -> dg.AssetsDefinition:
    """A weekly fact: replace the week's rows with `insert_sql`, check its pandera contract and key."""
    table = f"gold.{key.path[-1]}"
    contract_check = f"check_contract_{key.path[-1]}"

    @dg.asset(
        key=key,
        group_name="gold",
        description=description,
        deps=FACT_DEPS,
        kinds={"duckdb", "sql"},
        owners=OWNERS,
        automation_condition=KEEP_CURRENT,
        metadata=table_metadata(GOLD_TABLES[key.path[-1]]),
        **range_run(
            weekly_partitions,
            key,
            {
                contract_check: f"The week's rows satisfy the pandera contract {contract.name} (types, ranges, row rules).",
                unique_check: f"One row per {', '.join(unique_key)} and week end.",
            },
        ),
    )
    def weekly_fact(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
        yield from each_partition(context, lambda partition: one_week(duckdb, week_end(partition)))

    def one_week(duckdb: DuckDBResource, as_of: date):
        with duckdb.get_connection() as conn:
            conn.execute(GOLD_DDL)
            rows = _replace_week(conn, table, as_of, insert_sql)
            contract_outcome = quality.validate_week(conn, table, contract, as_of)
            unique_outcome = quality.unique_keys(conn, table, unique_key, as_of)
            summary = conn.execute(summary_sql, {"week_end": as_of}).fetchall()
        yield dg.MaterializeResult(
            metadata={
                **week_metadata(as_of, rows),
                "dagster/column_lineage": lineage,
                "summary": dg.MetadataValue.md(markdown_preview(summary_columns, summary)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=contract_check, passed=contract_outcome.passed, metadata=contract_outcome.metadata
                ),
                dg.AssetCheckResult(check_name=unique_check, passed=unique_outcome.passed, metadata=unique_outcome.metadata),
            ],
        )

    return weekly_fact


care_gap_closure = _weekly_fact(
    CARE_GAP_CLOSURE,
    "One row per member care gap of the measurement year, as of the week end: opened, closed (and how), "
    "outreach touches before closure by channel, appointments, days to close, and the attributed channel "
    "(the last reaching touch within 90 days before closure).",
    CARE_GAP_CLOSURE_SQL,
    quality.CareGapClosure,
    "check_uniqueness_gap_id",
    ["gap_id"],
    CARE_GAP_CLOSURE_LINEAGE,
    "SELECT measure_code, count(*), count(*) FILTER (WHERE is_closed), round(avg(days_to_close), 1), "
    "mode(attributed_channel) FROM gold.care_gap_closure WHERE as_of_week_end = $week_end GROUP BY 1 ORDER BY 1",
    ["measure", "gaps", "closed", "mean days to close", "most credited channel"],
)

campaign_effectiveness = _weekly_fact(
    CAMPAIGN_EFFECTIVENESS,
    "Campaign effectiveness as of the week end, by channel x region x contract x cohort (dual/LIS, age band, chronic conditions) x measure: "
    "members targeted, attempts, reach rate, members engaged, appointments booked, appointment show rate, gaps closed, gap closure within 30/60/90 days of the first touch "
    "(over gaps whose window has fully elapsed), opt-outs.",
    CAMPAIGN_EFFECTIVENESS_SQL,
    quality.CampaignEffectiveness,
    "check_uniqueness_campaign_cell",
    ["channel", "region", "contract_id", "dual_lis_cohort", "age_band", "chronic_condition", "measure_code"],
    CAMPAIGN_EFFECTIVENESS_LINEAGE,
    "SELECT channel, sum(members_targeted), round(sum(members_reached) / sum(members_targeted), 3), "
    "round(sum(closed_within_30d) / nullif(sum(gaps_mature_30d), 0), 3), sum(members_opted_out) "
    "FROM gold.campaign_effectiveness WHERE as_of_week_end = $week_end GROUP BY 1 ORDER BY 1",
    ["channel", "members targeted", "reach rate", "closed within 30 days", "opted out"],
)


RATE_CHECKS = {
    "check_contract_contract_measure_rates": "Rates within [0, 100], denominators positive, projected stars within 1..5.",
    "check_uniqueness_contract_measure": "One row per contract and measure for the week.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CONTRACT_MEASURE_RATES,
            group_name="gold",
            description=(
                "Per plan contract and CMS measure id, as of the week end: numerator, denominator and rate from member-level data "
                "(care gaps for C01, C02, C11, C12, C14, C20; PDC for D08-D10) or the warehouse's contract extract "
                "(C18 readmissions, CAHPS, and each contract's last published scores on the other measures), with projected "
                "measure stars under the forecast cut points of the star year the data will be rated in."
            ),
            deps=[CARE_GAP_CLOSURE, SILVER["rx_fills"], SILVER["members"], dg.AssetKey(["bronze", "edw"]), PROJECTION_CUT_POINTS],
            kinds={"duckdb", "pandas"},
            owners=OWNERS,
            automation_condition=KEEP_CURRENT,
        ),
        dg.AssetSpec(
            CONTRACT_PROJECTED_SUMMARY,
            group_name="gold",
            description=(
                "Per plan contract, the CMS summary rating for the star year its measurement-year data will be rated in "
                "(2028 for 2026), projected over the measures available this week under the forecast cut points (weights, "
                "reward factor, half-star rounding; no CAI), with the improvement measures (C30/D04) from the contract's prior "
                "scores to this week's and their hold-harmless, and P(4+) from cut points simulated with the forecast's "
                "back-test error."
            ),
            deps=[CONTRACT_MEASURE_RATES],
            kinds={"duckdb", "pandas"},
            owners=OWNERS,
            automation_condition=KEEP_CURRENT,
        ),
    ],
    **range_run(weekly_partitions, CONTRACT_MEASURE_RATES, RATE_CHECKS),
)
def contract_measure_rates(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    yield from each_partition(context, lambda partition: _measure_rates_of_week(duckdb, week_end(partition)))


def _measure_rates_of_week(duckdb: DuckDBResource, as_of: date):
    rules = rules_for(RULES_STAR_YEAR)
    with duckdb.get_connection() as conn:
        conn.execute(GOLD_DDL)
        conn.execute(f"CREATE OR REPLACE TEMP TABLE member_pdc AS {MEMBER_PDC_SQL}", pdc_parameters(as_of))
        counts = conn.execute(
            f"{CONTRACT_MEASURE_COUNTS_SQL} UNION ALL {CONTRACT_QUALITY_SQL}",
            {"week_end": as_of, **adherence_measure_parameters()},
        ).df()
        cut_points = conn.execute(PROJECTION_CUT_POINTS_SQL, {"year": PROJECTION_STAR_YEAR}).df()
        rates = project_measure_stars(counts, cut_points, rules)
        # Improvement compares each contract's prior-year scores (the extract's, rated like this week's) with this week's.
        prior_year = conn.execute(CONTRACT_PRIOR_YEAR_SQL, {"week_end": as_of}).df()
        prior_year = project_measure_stars(prior_year, cut_points, rules)[
            ["contract_id", "measure_id", "rate", "projected_stars"]
        ]
        prior_year = prior_year.rename(columns={"rate": "value", "projected_stars": "stars"})
        improvement = project_improvement(rates, prior_year, cut_points, RULES_STAR_YEAR)
        summaries = project_summaries(rates, rules, cut_points, *_forecast_error(cut_points), improvement_stars=improvement)
        rates.insert(0, "as_of_week_end", as_of)
        summaries.insert(0, "as_of_week_end", as_of)
        with in_transaction(conn):
            for table, frame in (("gold.contract_measure_rates", rates), ("gold.contract_projected_summary", summaries)):
                conn.register("incoming", frame)
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
                conn.execute(f"DELETE FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of})
                conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
                conn.unregister("incoming")
        contract = quality.validate_week(conn, "gold.contract_measure_rates", quality.ContractMeasureRates, as_of)
        unique = quality.unique_keys(conn, "gold.contract_measure_rates", ["contract_id", "measure_id"], as_of)
    yield dg.MaterializeResult(
        asset_key=CONTRACT_MEASURE_RATES,
        metadata={
            **week_metadata(as_of, len(rates)),
            "cut_points_star_year": PROJECTION_STAR_YEAR,
            "rated_star_year": PROJECTION_STAR_YEAR,
            "rules_star_year": RULES_STAR_YEAR,
            "rates": dg.MetadataValue.md(
                markdown_preview(
                    ["contract", "measure", "numerator", "denominator", "rate", "stars"],
                    [
                        (
                            r.contract_id,
                            r.measure_id,
                            r.numerator,
                            r.denominator,
                            None if r.rate != r.rate else round(r.rate, 1),
                            r.projected_stars,
                        )
                        for r in rates.itertuples()
                    ][:40],
                )
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=CONTRACT_MEASURE_RATES,
                check_name="check_contract_contract_measure_rates",
                passed=contract.passed,
                metadata=contract.metadata,
            ),
            dg.AssetCheckResult(
                asset_key=CONTRACT_MEASURE_RATES,
                check_name="check_uniqueness_contract_measure",
                passed=unique.passed,
                metadata=unique.metadata,
            ),
        ],
    )
    yield dg.MaterializeResult(
        asset_key=CONTRACT_PROJECTED_SUMMARY,
        metadata={
            **week_metadata(as_of, len(summaries)),
            "rated_star_year": PROJECTION_STAR_YEAR,
            "projected_summary": dg.MetadataValue.md(
                markdown_preview(
                    [
                        "contract",
                        "measures",
                        "weighted mean",
                        "reward factor",
                        "C/D improvement stars",
                        f"projected {PROJECTION_STAR_YEAR}",
                        "P(4+)",
                    ],
                    [
                        (
                            s.contract_id,
                            s.measures_rated,
                            round(s.weighted_mean, 3),
                            s.reward_factor,
                            f"{s.part_c_improvement_stars:g}/{s.part_d_improvement_stars:g}",
                            s.projected_summary,
                            None if s.p_four_plus_cut_points != s.p_four_plus_cut_points else round(s.p_four_plus_cut_points, 2),
                        )
                        for s in summaries.itertuples()
                    ],
                )
            ),
        },
    )
