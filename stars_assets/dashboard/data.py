"""What the dashboard shows, as plain functions over the published lake tables (no Streamlit here).

Every figure on a page comes from one of these functions, so a test can compute the same figure
directly on the lake for the same filters. Only aggregates leave this module: the care-gap fact
is read without its gap and member identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from stars_assets.cli.predict import fitted_on_reference, prediction_report
from stars_assets.lib import lake
from stars_assets.lib.cms.rating import DEFAULT_STAR_YEAR, reward_factor, rules_for
from stars_assets.lib.gold.tables import CLOSURE_WINDOWS_DAYS
from stars_assets.lib.ordinal import SEED, OrdinalParams
from stars_assets.lib.ordinal.contract_predictions import PROBABILITY_COLUMNS, RATING_LEVELS
from stars_assets.lib.vocabulary import CHANNELS

# Columns of gold.care_gap_closure the dashboard may read: no gap_id, no member_id.
CLOSURE_COLUMNS = [
    "as_of_week_end",
    "contract_id",
    "region",
    "measure_code",
    "measurement_year",
    "open_date",
    "close_date",
    "is_closed",
    "days_to_close",
    "attributed_channel",
]
UNATTRIBUTED = "UNATTRIBUTED"


def read(layer: str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One published table as a DataFrame (only `columns` when given: the others are never read), through the lake reader."""
    if columns:
        return lake.dataset(layer, table).to_table(columns=columns).to_pandas()
    return lake.read_table(layer, table).to_pandas()


def weeks(frame: pd.DataFrame) -> list[date]:
    """The snapshot weeks in a weekly table, latest first."""
    return sorted(pd.to_datetime(frame["as_of_week_end"]).dt.date.unique(), reverse=True)


def _week_rows(frame: pd.DataFrame, week: date) -> pd.DataFrame:
    return frame[pd.to_datetime(frame["as_of_week_end"]).dt.date == week]


# --- Campaign effectiveness ------------------------------------------------------------------------

COHORTS: dict[str, tuple[str, str]] = {  # URL value -> (gold column, label)
    "dual_lis": ("dual_lis_cohort", "Dual / LIS status"),
    "age_band": ("age_band", "Age band"),
    "chronic_condition": ("chronic_condition", "Chronic conditions"),
}
# The drill path, top down: URL parameter -> gold column ("cohort" stands for the chosen cohort's column).
DRILL_PATH: tuple[str, ...] = ("channel", "region", "cohort", "measure")
DRILL_COLUMNS = {"channel": "channel", "region": "region", "measure": "measure_code"}
DRILL_LABELS = {"channel": "Channel", "region": "Region", "cohort": "Cohort", "measure": "Measure"}

# Sums behind the metrics; each metric is a sum or a ratio of two sums over the selected cells.
SUM_COLUMNS = [
    "members_targeted",
    "members_reached",
    "members_engaged",
    "appointments_booked",
    "attempts",
    "gaps_closed",
    *[f"{kind}_{n}d" for n in CLOSURE_WINDOWS_DAYS for kind in ("gaps_mature", "closed_within")],
]
METRICS: dict[str, tuple[str, str, str | None]] = {  # URL value -> (label, numerator, denominator)
    "members_touched": ("Members touched", "members_targeted", None),
    "members_reached": ("Members reached", "members_reached", None),
    "members_engaged": ("Members engaged", "members_engaged", None),
    "appointments_booked": ("Appointments booked", "appointments_booked", None),
    **{
        f"closed_{n}d": (f"Gaps closed within {n} days of the first touch", f"closed_within_{n}d", None)
        for n in CLOSURE_WINDOWS_DAYS
    },
    **{
        f"closure_rate_{n}d": (
            f"Closure rate within {n} days (gaps touched {n}+ days ago)",
            f"closed_within_{n}d",
            f"gaps_mature_{n}d",
        )
        for n in CLOSURE_WINDOWS_DAYS
    },
    "touches_per_closure": ("Touches per closed gap", "attempts", "gaps_closed"),
}


@dataclass(frozen=True)
class CampaignView:
    """Filters and drill path of the campaign page; lives in the URL's query parameters."""

    week: date | None = None  # None: the latest published week
    channel: str | None = None
    region: str | None = None
    cohort: str = "dual_lis"
    cohort_value: str | None = None
    measure: str | None = None
    metric: str = "members_touched"

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> CampaignView:
        """From query parameters; unknown values fall back to the defaults instead of failing."""

        def text(name: str) -> str | None:
            value = params.get(name)
            return value if value else None

        try:
            week = date.fromisoformat(params["week"]) if params.get("week") else None
        except ValueError:
            week = None
        cohort = params.get("cohort") if params.get("cohort") in COHORTS else cls.cohort
        metric = params.get("metric") if params.get("metric") in METRICS else cls.metric
        return cls(week, text("channel"), text("region"), cohort, text("cohort_value"), text("measure"), metric)

    def to_params(self) -> dict[str, str]:
        values = {
            "week": self.week.isoformat() if self.week else None,
            "channel": self.channel,
            "region": self.region,
            "cohort": self.cohort,
            "cohort_value": self.cohort_value,
            "measure": self.measure,
            "metric": self.metric,
        }
        return {name: value for name, value in values.items() if value}

    def column(self, step: str) -> str:
        return COHORTS[self.cohort][0] if step == "cohort" else DRILL_COLUMNS[step]

    def value(self, step: str) -> str | None:
        return self.cohort_value if step == "cohort" else getattr(self, step)

    @property
    def level(self) -> str:
        """The step the page breaks down by: the first one on the drill path without a filter (the last at the leaf)."""
        return next((step for step in DRILL_PATH if self.value(step) is None), DRILL_PATH[-1])

    def drill(self, value: str) -> CampaignView:
        """The view one step down: the current step filtered to `value`."""
        return replace(self, **{"cohort_value" if self.level == "cohort" else self.level: value})

    def up_to(self, step: str) -> CampaignView:
        """The view with `step` and every step below it unfiltered (a breadcrumb)."""
        below = DRILL_PATH[DRILL_PATH.index(step) :]
        return replace(self, **{("cohort_value" if s == "cohort" else s): None for s in below})

    def filtered(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        for step in DRILL_PATH:
            if self.value(step) is not None:
                mask &= frame[self.column(step)] == self.value(step)
        return frame[mask]


def _with_metrics(sums: pd.DataFrame) -> pd.DataFrame:
    out = sums.copy()
    for key, (_, numerator, denominator) in METRICS.items():
        out[key] = (
            sums[numerator] if denominator is None else sums[numerator] / sums[denominator].where(sums[denominator] > 0)
        ).astype(float)
    return out


def campaign_by_week(frame: pd.DataFrame, view: CampaignView) -> pd.DataFrame:
    """Every metric per week and value of the view's current drill step, within the view's filters."""
    column = view.column(view.level)
    rows = view.filtered(frame)
    sums = rows.groupby(["as_of_week_end", column], as_index=False)[SUM_COLUMNS].sum()
    table = _with_metrics(sums).rename(columns={column: view.level})
    table["as_of_week_end"] = pd.to_datetime(table["as_of_week_end"]).dt.date
    return table.sort_values(["as_of_week_end", view.level], ignore_index=True)


def campaign_for_week(frame: pd.DataFrame, view: CampaignView) -> pd.DataFrame:
    """The view's week (the latest when unset), one row per value of the current drill step."""
    table = campaign_by_week(frame, view)
    week = view.week or (max(table["as_of_week_end"]) if len(table) else None)
    return table[table["as_of_week_end"] == week].reset_index(drop=True)


def drill_options(frame: pd.DataFrame, view: CampaignView, step: str) -> list[str]:
    """Values a filter may take at `step` within the filters above it."""
    above = view.up_to(step).filtered(frame)
    values = sorted(above[view.column(step)].dropna().unique())
    if step == "channel":  # the channels in their canonical order
        values = [c for c in CHANNELS if c in values] + [c for c in values if c not in CHANNELS]
    return values


# --- Care-gap closure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapFilters:
    week: date | None = None
    contract: str | None = None
    measure: str | None = None

    def filtered(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = pd.Series(True, index=frame.index)
        if self.contract:
            mask &= frame["contract_id"] == self.contract
        if self.measure:
            mask &= frame["measure_code"] == self.measure
        return frame[mask]

    def week_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        rows = self.filtered(frame)
        return _week_rows(rows, self.week or (weeks(frame)[0] if len(frame) else None))


def gaps_over_year(frame: pd.DataFrame, filters: GapFilters) -> pd.DataFrame:
    """Open and closed gaps of the measurement year as each week's snapshot knew them."""
    rows = filters.filtered(frame)
    table = (
        rows.assign(as_of_week_end=pd.to_datetime(rows["as_of_week_end"]).dt.date)
        .groupby("as_of_week_end")
        .agg(gaps=("is_closed", "size"), closed=("is_closed", "sum"))
        .reset_index()
    )
    table["open"] = table["gaps"] - table["closed"]
    table["closure_rate"] = table["closed"] / table["gaps"]
    return table[["as_of_week_end", "open", "closed", "gaps", "closure_rate"]]


def gaps_by_contract_measure(frame: pd.DataFrame, filters: GapFilters) -> pd.DataFrame:
    """Open and closed gaps per contract and measure in the chosen week's snapshot."""
    rows = filters.week_rows(frame)
    table = (
        rows.groupby(["contract_id", "measure_code"]).agg(gaps=("is_closed", "size"), closed=("is_closed", "sum")).reset_index()
    )
    table["open"] = table["gaps"] - table["closed"]
    table["closure_rate"] = table["closed"] / table["gaps"]
    return table[["contract_id", "measure_code", "open", "closed", "gaps", "closure_rate"]]


def closure_curves(frame: pd.DataFrame, filters: GapFilters, step_days: int = 7) -> pd.DataFrame:
    """Per measure, the share of the snapshot's gaps closed within N days of opening, N = 0, 7, 14, ..."""
    rows = filters.week_rows(frame)
    if rows.empty:
        return pd.DataFrame(columns=["measure_code", "days_since_open", "share_closed"])
    horizon = int(np.nanmax(rows["days_to_close"].to_numpy(dtype=float), initial=0))
    days = np.arange(0, horizon + step_days, step_days)
    curves = []
    for measure, group in rows.groupby("measure_code"):
        closed_days = group["days_to_close"].dropna().to_numpy(dtype=float)
        curves.append(
            pd.DataFrame(
                {
                    "measure_code": measure,
                    "days_since_open": days,
                    "share_closed": [(closed_days <= d).sum() / len(group) for d in days],
                }
            )
        )
    return pd.concat(curves, ignore_index=True)


def closures_by_channel(frame: pd.DataFrame, filters: GapFilters) -> pd.DataFrame:
    """Closed gaps of the snapshot by the channel credited with the closure (last reaching touch)."""
    rows = filters.week_rows(frame)
    closed = rows[rows["is_closed"].astype(bool)]
    table = (
        closed["attributed_channel"]
        .fillna(UNATTRIBUTED)
        .value_counts()
        .rename_axis("attributed_channel")
        .reset_index(name="closures")
    )
    return table.sort_values(["closures", "attributed_channel"], ascending=[False, True], ignore_index=True)


# --- Contract outlook ------------------------------------------------------------------------------


def trajectory(predictions: pd.DataFrame, contract: str, model: str) -> pd.DataFrame:
    """Week by week: expected rating with a one-standard-deviation band of the predicted distribution, P(4+),
    the CMS projected summary and its reward factor."""
    rows = predictions[(predictions["contract_id"] == contract) & (predictions["model"] == model)]
    rows = rows.sort_values("as_of_week_end")
    probabilities = rows[PROBABILITY_COLUMNS].fillna(0.0).to_numpy()
    levels = np.asarray(RATING_LEVELS)
    expected = rows["expected_stars"].to_numpy(dtype=float)
    spread = np.sqrt((probabilities * (levels[None, :] - expected[:, None]) ** 2).sum(axis=1))
    return pd.DataFrame(
        {
            "as_of_week_end": pd.to_datetime(rows["as_of_week_end"]).dt.date.to_numpy(),
            "expected_stars": expected,
            "stars_low": expected - spread,
            "stars_high": expected + spread,
            "p_four_plus": rows["p_four_plus"].to_numpy(dtype=float),
            "projected_summary": rows["projected_summary"].to_numpy(dtype=float),
            "reward_factor": rows["reward_factor"].to_numpy(dtype=float),
        }
    )


LEVER_VIEW_COLUMNS = [
    "lever_rank",
    "measure_id",
    "measure_code",
    "rate",
    "current_stars",
    "threshold",
    "distance",
    "weight",
    "unrounded_gain",
    "rounded_gain",
    "reward_factor_before",
    "reward_factor_after",
]


def ranked_levers(levers: pd.DataFrame, contract: str, week: date | None = None) -> pd.DataFrame:
    """The contract's measure levers in the week (the latest when unset), best first."""
    rows = levers[levers["contract_id"] == contract]
    if rows.empty:
        return pd.DataFrame(columns=LEVER_VIEW_COLUMNS)
    rows = _week_rows(rows, week or weeks(rows)[0])
    return rows.sort_values(["lever_rank", "measure_id"])[LEVER_VIEW_COLUMNS].reset_index(drop=True)


# --- Predictor -------------------------------------------------------------------------------------

MODEL_TABLE = ("model", "star_rating_model")


def fitted_params() -> tuple[OrdinalParams, str]:
    """The fitted parameter set as published in the lake; fitted on the shipped CMS tables when not published yet."""
    try:
        return OrdinalParams.from_parameter_table(read(*MODEL_TABLE)), "lake table {}/{}".format(*MODEL_TABLE)
    except lake.UnknownTableError:
        return fitted_on_reference()


def parameter_set(model: str) -> tuple[OrdinalParams, str]:
    return (SEED, "STARS.md reference calibration") if model == "seed" else fitted_params()


def predictor_report(params: OrdinalParams, inputs: dict[str, float]) -> dict:
    """The same report as `stars-predict --json`."""
    return prediction_report(params, inputs)


def with_reward_factor(expected_stars: float, variance: float) -> tuple[float, float]:
    """CMS's reward factor rule (2026 thresholds, improvement measures included) for a contract whose weighted mean
    of measure stars is the expected rating and whose weighted variance is `variance`; and the rating with it."""
    factor = reward_factor(expected_stars, variance, rules_for(DEFAULT_STAR_YEAR))
    return factor, min(5.0, expected_stars + factor)


# --- Data quality ----------------------------------------------------------------------------------


def quarantine_by_day(summary: pd.DataFrame, provider: str | None = None) -> pd.DataFrame:
    """Quarantined rows per delivery day, provider and reason."""
    rows = summary if provider is None else summary[summary["provider"] == provider]
    table = rows.groupby(["delivery_date", "provider", "reason"], as_index=False)["rows"].sum()
    table["delivery_date"] = pd.to_datetime(table["delivery_date"]).dt.date
    return table.sort_values(["delivery_date", "provider", "reason"], ignore_index=True)


def check_outcomes_by_day(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Asset-check evaluations per day: passed, failed as warnings, failed as errors."""
    frame = outcomes.assign(
        day=pd.to_datetime(outcomes["evaluated_at"]).dt.date,
        outcome=np.where(outcomes["passed"].astype(bool), "passed", "failed " + outcomes["severity"].astype(str).str.lower()),
    )
    return (
        frame.groupby(["day", "outcome"])
        .size()
        .reset_index(name="evaluations")
        .sort_values(["day", "outcome"], ignore_index=True)
    )


def failed_checks(outcomes: pd.DataFrame) -> pd.DataFrame:
    """The latest evaluation of each check that failed, newest first."""
    latest = outcomes.sort_values("evaluated_at").groupby(["asset_key", "check_name"], as_index=False).tail(1)
    failed = latest[~latest["passed"].astype(bool)]
    return failed[["asset_key", "check_name", "severity", "evaluated_at", "description"]].sort_values(
        "evaluated_at", ascending=False, ignore_index=True
    )


def freshness(deliveries: pd.DataFrame) -> pd.DataFrame:
    """Each vendor's latest freshness evaluation."""
    latest = deliveries.sort_values("evaluated_at").groupby("provider", as_index=False).tail(1)
    return latest[["provider", "newest_file_at", "hours_since", "sla_hours", "is_fresh", "evaluated_at"]].sort_values(
        "provider", ignore_index=True
    )
