"""Gold contracts as pandera DataFrameModels, and the rules the gold checks report.

A week of a gold table is small enough for pandas (one row per gap at most), so each check
reads that week and validates it lazily, reporting every failed rule with counts and examples.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from stars_assets.lib.bronze.quality import RuleOutcome
from stars_assets.lib import vocabulary as v
from stars_assets.lib.masking import mask_value


class CareGapClosure(pa.DataFrameModel):
    gap_id: Series[str] = pa.Field(nullable=False)
    member_id: Series[str] = pa.Field(nullable=False)
    contract_id: Series[str] = pa.Field(nullable=False)
    measure_code: Series[str] = pa.Field(isin=list(v.CARE_GAP_MEASURES))
    open_date: Series[pd.Timestamp] = pa.Field(nullable=False)
    close_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    days_to_close: Series[float] = pa.Field(ge=0, nullable=True)
    touches_total: Series[int] = pa.Field(ge=0)
    reaching_touches: Series[int] = pa.Field(ge=0)
    appointments_booked: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check(error="close_date is before open_date")
    def closure_not_before_opening(cls, df: pd.DataFrame) -> Series[bool]:
        return df["close_date"].isna() | (df["close_date"] >= df["open_date"])

    @pa.dataframe_check(error="is_closed disagrees with close_date")
    def closed_flag_matches_date(cls, df: pd.DataFrame) -> Series[bool]:
        return df["is_closed"] == df["close_date"].notna()

    class Config:
        coerce = True


class CampaignEffectiveness(pa.DataFrameModel):
    channel: Series[str] = pa.Field(isin=list(v.CHANNELS))
    members_targeted: Series[int] = pa.Field(gt=0)
    attempts: Series[int] = pa.Field(ge=0)
    members_reached: Series[int] = pa.Field(ge=0)
    reach_rate: Series[float] = pa.Field(ge=0, le=1)
    appointment_show_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    closure_rate_30d: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    closure_rate_60d: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    closure_rate_90d: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    members_opted_out: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check(error="more members reached than targeted")
    def reached_within_targeted(cls, df: pd.DataFrame) -> Series[bool]:
        return df["members_reached"] <= df["members_targeted"]

    class Config:
        coerce = True


class ContractMeasureRates(pa.DataFrameModel):
    contract_id: Series[str] = pa.Field(str_matches=r"^[HRES]\d{4}$")
    measure_id: Series[str] = pa.Field(str_matches=r"^[CD]\d{2}$")
    denominator: Series[float] = pa.Field(gt=0)
    numerator: Series[float] = pa.Field(ge=0, nullable=True)
    rate: Series[float] = pa.Field(ge=0, le=100)
    projected_stars: Series[pd.Int64Dtype] = pa.Field(ge=1, le=5, nullable=True)

    class Config:
        coerce = True


def validate(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> RuleOutcome:
    """Every failure of the contract, counted by check, with a few masked examples."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        by_check = cases.groupby(["column", "check"], dropna=False).size()
        examples = [
            f"{row.column}: {row.check} ({mask_value(str(row.column), row.failure_case)})"
            for row in cases.head(5).itertuples()
        ]
        return RuleOutcome(passed=False, metadata={
            "rows_checked": len(frame), "failures": int(len(cases)),
            "failures_by_check": {f"{c or 'table'}: {k}": int(n) for (c, k), n in by_check.items()},
            "examples": examples,
        })
    return RuleOutcome(passed=True, metadata={"rows_checked": len(frame), "failures": 0})


def validate_week(con: duckdb.DuckDBPyConnection, table: str, model: type[pa.DataFrameModel], as_of: date) -> RuleOutcome:
    """The contract over one week of a gold table (a week is small enough for pandas)."""
    return validate(model, con.execute(f"SELECT * FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of}).df())


def unique_keys(con: duckdb.DuckDBPyConnection, table: str, key: list[str], as_of: date) -> RuleOutcome:
    columns = ", ".join(key)
    duplicated = con.execute(
        f"SELECT count(*) FROM (SELECT {columns} FROM {table} WHERE as_of_week_end = $week_end "
        f"GROUP BY ALL HAVING count(*) > 1)", {"week_end": as_of}).fetchone()[0]
    return RuleOutcome(passed=duplicated == 0, metadata={"key": key, "duplicated_keys": int(duplicated)})
