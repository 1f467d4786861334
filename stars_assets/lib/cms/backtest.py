"""Back-tests over CMS's published history: the cut-point engine against each year's published cut points and
measure stars. Plain functions over DataFrames; `load_history` reads the tables shipped in data/reference/cms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stars_assets import settings
from stars_assets.lib.cms import cahps, crosswalk, cutpoints, tables


@dataclass(frozen=True)
class History:
    """Every published star year, long format, keyed by the crosswalk."""

    scores: pd.DataFrame  # star_year, contract_id, measure_key, measure_id, value (MA-PD cut-point population)
    stars: pd.DataFrame  # star_year, contract_id, measure_key, measure_id, stars (published)
    summary: pd.DataFrame  # Summary Ratings
    cai: pd.DataFrame
    thresholds: pd.DataFrame  # published: star_year, measure_key, stars, threshold

    @property
    def years(self) -> list[int]:
        return sorted(int(year) for year in self.summary["star_year"].unique())


def cut_point_population(scores: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Scores that set MA-PD cut points: Part C scores of every contract, Part D scores of non-PDP contracts
    (PDPs have their own Part D cut points)."""
    org = summary[["star_year", "contract_id", "organization_type"]]
    joined = scores.merge(org, on=["star_year", "contract_id"], how="left")
    pdp = joined["organization_type"].fillna("").str.contains("PDP")
    return joined[(joined["part"] == "C") | ~pdp].drop(columns="organization_type")


def load_history(years: list[int] | None = None) -> History:
    """The tables shipped in data/reference/cms, every star year (or `years`)."""
    years = years or tables.available_star_years()
    folders = [settings.cms_reference_dir(year) for year in years]
    cai_tables = [tables.cai(folder) for folder in folders]
    return history_from_tables(
        pd.concat([tables.measure_scores(folder) for folder in folders], ignore_index=True),
        pd.concat([tables.measure_stars(folder) for folder in folders], ignore_index=True),
        pd.concat([tables.summary_ratings(folder) for folder in folders], ignore_index=True),
        pd.concat([table for table in cai_tables if not table.empty] or cai_tables[:1], ignore_index=True),
    )


def history_from_tables(
    measure_scores: pd.DataFrame, measure_stars: pd.DataFrame, summary: pd.DataFrame, cai: pd.DataFrame
) -> History:
    """A History from the cms tables as the readers (or the warehouse) give them."""
    years = sorted(int(year) for year in summary["star_year"].unique())
    scores = crosswalk.with_measure_keys(measure_scores.dropna(subset=["value"]))
    stars = crosswalk.with_measure_keys(measure_stars.dropna(subset=["stars"]))
    published = tables.published_thresholds(crosswalk.cms_reference_root() / tables.PUBLISHED_THRESHOLDS_FILE)
    keys = crosswalk.crosswalk()[["star_year", "cut_point_code", "measure_key"]]
    published = published.merge(keys, on=["star_year", "cut_point_code"], how="inner")
    published = with_cms_cut_point_files(published[["star_year", "measure_key", "stars", "threshold"]], years)
    return History(
        scores=cut_point_population(scores, summary)[["star_year", "contract_id", "measure_key", "measure_id", "part", "value"]],
        stars=stars[["star_year", "contract_id", "measure_key", "measure_id", "stars"]].assign(
            stars=lambda f: f["stars"].astype(int)
        ),
        summary=summary,
        cai=cai,
        thresholds=published[published["star_year"].isin(years)][["star_year", "measure_key", "stars", "threshold"]],
    )


def with_cms_cut_point_files(published: pd.DataFrame, years: list[int]) -> pd.DataFrame:
    """The compiled thresholds, replaced by CMS's own cut-point files where a year ships them (the compiled table
    has 2026's Kidney Health Evaluation off by 1 to 5 points): Part C's and Part D's MA-PD bands."""
    files = [tables.cut_points(settings.cms_reference_dir(year)) for year in years]
    files = pd.concat([table for table in files if not table.empty] or files[:1], ignore_index=True)
    files = files[(files["stars"] >= 2) & files["org_type"].isin([tables.ALL_ORG_TYPES, "MA-PD"])]
    if files.empty:
        return published
    files = crosswalk.with_measure_keys(files.drop(columns="higher_is_better"))
    files["threshold"] = files["lower"].where(files["higher_is_better"], files["upper"])
    files = files[["star_year", "measure_key", "stars", "threshold"]]
    covered = published.merge(files[["star_year", "measure_key"]].drop_duplicates(), how="left", indicator=True)
    kept = published[(covered["_merge"] == "left_only").to_numpy()]
    return pd.concat([kept, files], ignore_index=True).sort_values(["star_year", "measure_key", "stars"], ignore_index=True)


def specs_for(history: History) -> dict[int, dict[str, cutpoints.MeasureSpec]]:
    measures = crosswalk.crosswalk()
    return {
        year: cutpoints.measure_specs(history.scores[history.scores["star_year"] == year], measures) for year in history.years
    }


@dataclass(frozen=True)
class CahpsModel:
    """What the public tables do not carry for CAHPS stars, fitted on published years (`cahps`)."""

    fitted_on: tuple[int, ...]
    percentile_shift: float
    margins: pd.DataFrame  # measure_key, margin_below, margin_above


def fit_cahps_model(history: History, specs: dict[int, dict[str, cutpoints.MeasureSpec]], years: list[int]) -> CahpsModel:
    """The CAHPS percentile shift and significance margins fitted on `years`' published CAHPS cut points and stars."""
    scores = _cahps_rows(history.scores, specs, years)
    published = _cahps_rows(history.thresholds, specs, years)
    base = pd.concat(
        [
            cutpoints.assign_stars(scores[scores["star_year"] == year], published[published["star_year"] == year], specs[year])
            for year in years
        ],
        ignore_index=True,
    ).rename(columns={"stars": "base"})
    rated = base.dropna(subset=["base"]).merge(
        history.stars.rename(columns={"stars": "published"}), on=["star_year", "contract_id", "measure_key"]
    )
    return CahpsModel(tuple(years), cahps.fit_percentile_shift(scores, published), cahps.fit_significance_margins(rated))


def cahps_models(history: History, specs: dict[int, dict[str, cutpoints.MeasureSpec]] | None = None) -> dict[int, CahpsModel]:
    """Each year's CAHPS model fitted on every other published year, never on the year it rates."""
    specs = specs or specs_for(history)
    return cahps.out_of_sample(history.years, lambda years: fit_cahps_model(history, specs, years))


def cahps_model_table(models: dict[int, CahpsModel]) -> pd.DataFrame:
    """One row per rated year and CAHPS measure: the years fitted on, the percentile shift and the margins."""
    return pd.concat(
        [
            model.margins.assign(
                star_year=year, fitted_on=", ".join(map(str, model.fitted_on)), percentile_shift=model.percentile_shift
            )
            for year, model in models.items()
        ],
        ignore_index=True,
    )[["star_year", "fitted_on", "percentile_shift", *cahps.MARGIN_COLUMNS]]


def _cahps_rows(frame: pd.DataFrame, specs: dict[int, dict[str, cutpoints.MeasureSpec]], years: list[int]) -> pd.DataFrame:
    keep = [
        year in years and key in specs[year] and specs[year][key].method == "cahps"
        for year, key in zip(frame["star_year"], frame["measure_key"])
    ]
    return frame[keep]


def engine_cut_points(
    history: History,
    specs: dict[int, dict[str, cutpoints.MeasureSpec]] | None = None,
    models: dict[int, CahpsModel] | None = None,
) -> pd.DataFrame:
    """Each year's cut points re-derived from that year's scores (guardrails against the prior year's published;
    CAHPS percentiles moved by each year's out-of-sample `models`' shift, none without)."""
    specs = specs or specs_for(history)
    models = models or {}
    population = {year: clustering_population(history, year, specs[year]) for year in history.years}
    derived = []
    for year in history.years:
        prior = history.thresholds[history.thresholds["star_year"] == year - 1]
        prior_ranges = cutpoints.score_ranges(population[year - 1], specs[year - 1]) if year - 1 in population else None
        derived.append(
            cutpoints.year_cut_points(
                population[year],
                specs[year],
                year,
                prior if len(prior) else None,
                prior_ranges,
                cahps_shift=models[year].percentile_shift if year in models else 0.0,
            )
        )
    return pd.concat(derived, ignore_index=True)


def clustering_population(history: History, year: int, specs: dict[str, cutpoints.MeasureSpec]) -> pd.DataFrame:
    """The scores that set `year`'s cut points (without the contracts the 60 percent rule excludes)."""
    disaster_pct = history.summary[history.summary["star_year"] == year].set_index("contract_id")["disaster_pct_measurement_year"]
    return cutpoints.clustering_population(history.scores[history.scores["star_year"] == year], disaster_pct, specs, year)


def threshold_comparison(derived: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """One row per published threshold the engine also derived: both values and the difference."""
    joined = published.merge(derived, on=["star_year", "measure_key", "stars"], suffixes=("_published", "_derived"))
    joined = joined.dropna(subset=["threshold_published", "threshold_derived"])
    joined["difference"] = joined["threshold_derived"] - joined["threshold_published"]
    return joined


def stars_comparison(
    history: History,
    thresholds: pd.DataFrame,
    specs: dict[int, dict[str, cutpoints.MeasureSpec]],
    models: dict[int, CahpsModel] | None = None,
) -> pd.DataFrame:
    """Published measure stars against the stars `thresholds` give the same scores (CAHPS base groups moved by the
    significance test of each year's `models`, where given)."""
    models = models or {}
    assigned = pd.concat(
        [
            with_cahps_significance(
                cutpoints.assign_stars(
                    history.scores[history.scores["star_year"] == year], thresholds[thresholds["star_year"] == year], specs[year]
                ),
                specs[year],
                models.get(year),
            )
            for year in history.years
        ],
        ignore_index=True,
    )
    joined = assigned.dropna(subset=["stars"]).merge(
        history.stars, on=["star_year", "contract_id", "measure_key"], suffixes=("_derived", "_published")
    )
    methods = {(year, key): spec.method for year, year_specs in specs.items() for key, spec in year_specs.items()}
    joined["method"] = [methods[(year, key)] for year, key in zip(joined["star_year"], joined["measure_key"])]
    return joined


def with_cahps_significance(
    assigned: pd.DataFrame, specs: dict[str, cutpoints.MeasureSpec], model: CahpsModel | None
) -> pd.DataFrame:
    """One year's `assign_stars` result with the CAHPS measures' base groups moved by `model`'s significance test
    (the national mean is over all of the year's scores in `assigned`); unchanged without a model."""
    if model is None:
        return assigned
    is_cahps = assigned["measure_key"].map(lambda key: key in specs and specs[key].method == "cahps").to_numpy(dtype=bool)
    moved = cahps.significance_stars(assigned[is_cahps].rename(columns={"stars": "base"}), model.margins)
    result = assigned.copy()
    result.loc[is_cahps, "stars"] = moved.to_numpy()
    return result


def engine_backtest(history: History) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-year table, per-threshold detail): share of published thresholds reproduced exactly (at the
    published precision) and within 1 point, and share of published measure stars reproduced, for the
    clustering measures, the CAHPS measures and all; the published thresholds' own star reproduction for scale.
    CAHPS stars (the engine's and the published thresholds' alike) go through the significance test fitted on the
    other years (`cahps_models`)."""
    specs = specs_for(history)
    models = cahps_models(history, specs)
    derived = engine_cut_points(history, specs, models)
    detail = threshold_comparison(derived, history.thresholds)
    engine_stars = stars_comparison(history, derived, specs, models)
    published_stars = stars_comparison(history, history.thresholds, specs, models)
    rows = []
    for year in history.years:
        for label, methods in (("clustering", {"clustering", "improvement"}), ("cahps", {"cahps"}), ("all", None)):
            d = detail[(detail["star_year"] == year) & (detail["method"].isin(methods) if methods else True)]
            e = engine_stars[(engine_stars["star_year"] == year) & (engine_stars["method"].isin(methods) if methods else True)]
            p = published_stars[
                (published_stars["star_year"] == year) & (published_stars["method"].isin(methods) if methods else True)
            ]
            rows.append(
                {
                    "star_year": year,
                    "measures": label,
                    "thresholds": len(d),
                    "exact": _share(d["difference"].abs() < 1e-6),
                    "within_1_point": _share(d["difference"].abs() <= 1 + 1e-9),
                    "mean_abs_error": float(d["difference"].abs().mean()) if len(d) else np.nan,
                    "measure_stars": len(e),
                    "stars_reproduced": _share(e["stars_derived"] == e["stars_published"]),
                    "stars_from_published_thresholds": _share(p["stars_derived"] == p["stars_published"]),
                }
            )
    return pd.DataFrame(rows), detail


def _share(mask: pd.Series) -> float:
    return round(float(mask.mean()), 4) if len(mask) else np.nan


def cahps_backtest(history: History) -> pd.DataFrame:
    """Per star year, the CAHPS measures alone, step by step: published cut points reproduced exactly (rounded
    percentiles, then moved by the out-of-sample shift) and published stars reproduced by the base groups, with the
    significance test, and by the published cut points with and without it (the ceiling)."""
    specs = specs_for(history)
    cahps_specs = {
        year: {key: spec for key, spec in year_specs.items() if spec.method == "cahps"} for year, year_specs in specs.items()
    }
    keys = {key for year_specs in cahps_specs.values() for key in year_specs}
    only = History(
        scores=history.scores[history.scores["measure_key"].isin(keys)],
        stars=history.stars[history.stars["measure_key"].isin(keys)],
        summary=history.summary,
        cai=history.cai,
        thresholds=history.thresholds[history.thresholds["measure_key"].isin(keys)],
    )
    models = cahps_models(only, cahps_specs)
    percentiles = engine_cut_points(only, cahps_specs)
    shifted = engine_cut_points(only, cahps_specs, models)
    variants = {
        "percentiles": (percentiles, None),
        "shifted": (shifted, None),
        "shifted_significance": (shifted, models),
        "published": (only.thresholds, None),
        "published_significance": (only.thresholds, models),
    }
    reproduced = {
        name: stars_comparison(only, thresholds, cahps_specs, variant_models)
        for name, (thresholds, variant_models) in variants.items()
    }
    exact = {
        "percentiles": threshold_comparison(percentiles, only.thresholds),
        "shifted": threshold_comparison(shifted, only.thresholds),
    }
    rows = []
    for year in only.years:
        row = {"star_year": year, "percentile_shift": models[year].percentile_shift}
        for name, detail in exact.items():
            row[f"exact_{name}"] = _share(detail.loc[detail["star_year"] == year, "difference"].abs() < 1e-6)
        for name, joined in reproduced.items():
            year_rows = joined[joined["star_year"] == year]
            row[f"stars_{name}"] = _share(year_rows["stars_derived"] == year_rows["stars_published"])
        rows.append(row)
    return pd.DataFrame(rows)
