"""Gold contracts in pandera, and the rules the gold checks report. The fact tables' contracts take
their columns, dtypes and nullability from the table specs (lib/gold/tables.py) and add their rules.

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
from stars_assets.lib.contracts import column_checks
from stars_assets.lib.gold import tables
from stars_assets.lib.masking import mask_value
from stars_assets.lib.tables import TableSpec

# How a DuckDB column reads into pandas: nullable integer and boolean extension types, so a null
# does not turn a count into a float.
PANDAS_DTYPES = {
    "VARCHAR": str,
    "BIGINT": "Int64",
    "INTEGER": "Int64",
    "DOUBLE": float,
    "BOOLEAN": "boolean",
    "DATE": "datetime64[ns]",
    "TIMESTAMP": "datetime64[ns]",
}


def contract(spec: TableSpec, name: str, rules: dict[str, list[pa.Check]], checks: list[pa.Check] = ()) -> pa.DataFrameSchema:
    """The pandera contract of a gold table: the spec's columns, dtypes, nullability and codes, plus the rules."""
    return pa.DataFrameSchema(
        {c.name: pa.Column(PANDAS_DTYPES[c.type], nullable=c.nullable, checks=column_checks(c, rules)) for c in spec.columns},
        checks=list(checks),
        name=name,
        coerce=True,
    )


NOT_NEGATIVE = [pa.Check.ge(0)]
RATE = [pa.Check.ge(0), pa.Check.le(1)]

CareGapClosure = contract(
    tables.CARE_GAP_CLOSURE,
    "CareGapClosure",
    {column: NOT_NEGATIVE for column in ("days_to_close", "touches_total", "reaching_touches", "appointments_booked")},
    [
        pa.Check(
            lambda df: df["close_date"].isna() | (df["close_date"] >= df["open_date"]), error="close_date is before open_date"
        ),
        pa.Check(lambda df: df["is_closed"] == df["close_date"].notna(), error="is_closed disagrees with close_date"),
    ],
)

CampaignEffectiveness = contract(
    tables.CAMPAIGN_EFFECTIVENESS,
    "CampaignEffectiveness",
    {
        "members_targeted": [pa.Check.gt(0)],
        **{
            column: NOT_NEGATIVE
            for column in (
                "attempts",
                "members_reached",
                "members_opted_out",
                "members_engaged",
                "appointments_booked",
                "gaps_closed",
            )
        },
        "chronic_condition": [pa.Check.str_matches(r"^(NONE|[A-Z+]+)$")],
        **{
            column: RATE
            for column in ("reach_rate", "appointment_show_rate", *(f"closure_rate_{n}d" for n in tables.CLOSURE_WINDOWS_DAYS))
        },
    },
    [
        pa.Check(lambda df: df["members_reached"] <= df["members_targeted"], error="more members reached than targeted"),
    ],
)


class ContractMeasureRates(pa.DataFrameModel):
    contract_id: Series[str] = pa.Field(str_matches=r"^[HRES]\d{4}$")
    measure_id: Series[str] = pa.Field(str_matches=r"^[CD]\d{2}$")
    denominator: Series[float] = pa.Field(gt=0)
    numerator: Series[float] = pa.Field(ge=0, nullable=True)
    rate: Series[float] = pa.Field(ge=0, le=100)
    projected_stars: Series[pd.Int64Dtype] = pa.Field(ge=1, le=5, nullable=True)

    class Config:
        coerce = True


def validate(model: pa.DataFrameSchema | type[pa.DataFrameModel], frame: pd.DataFrame) -> RuleOutcome:
    """Every failure of the contract, counted by check, with a few masked examples."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        by_check = cases.groupby(["column", "check"], dropna=False).size()
        examples = [
            f"{row.column}: {row.check} ({mask_value(str(row.column), row.failure_case)})" for row in cases.head(5).itertuples()
        ]
        return RuleOutcome(
            passed=False,
            metadata={
                "rows_checked": len(frame),
                "failures": int(len(cases)),
                "failures_by_check": {f"{c or 'table'}: {k}": int(n) for (c, k), n in by_check.items()},
                "examples": examples,
            },
        )
    return RuleOutcome(passed=True, metadata={"rows_checked": len(frame), "failures": 0})


def validate_week(
    con: duckdb.DuckDBPyConnection, table: str, model: pa.DataFrameSchema | type[pa.DataFrameModel], as_of: date
) -> RuleOutcome:
    """The contract over one week of a gold table (a week is small enough for pandas)."""
    return validate(model, con.execute(f"SELECT * FROM {table} WHERE as_of_week_end = $week_end", {"week_end": as_of}).df())


def unique_keys(con: duckdb.DuckDBPyConnection, table: str, key: list[str], as_of: date) -> RuleOutcome:
    columns = ", ".join(key)
    duplicated = con.execute(
        f"SELECT count(*) FROM (SELECT {columns} FROM {table} WHERE as_of_week_end = $week_end GROUP BY ALL HAVING count(*) > 1)",
        {"week_end": as_of},
    ).fetchone()[0]
    return RuleOutcome(passed=duplicated == 0, metadata={"key": key, "duplicated_keys": int(duplicated)})
