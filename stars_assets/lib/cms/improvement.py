"""The Part C and Part D improvement measures (C30 / D04 in 2026) from two consecutive years of measure scores.

2026 Technical Notes, Attachment I: for each measure a contract was scored on in both years (not an improvement
measure, no significant specification change), the change score (current - prior; prior - current where lower is
better) is tested two-sided at 0.05 against its standard error; a significant decline on a measure rated 5 stars in
both years counts as no change (hold-harmless). Net improvement = improved - declined; the improvement score is the
weighted net improvement over the weighted number of eligible measures (current year's weights), per part, for
contracts with both years' scores on at least half the part's measures. The score is rated with the improvement
measure's cut points like any other measure.

Simplifications the public data force (validated against CMS's published C30/D04 stars in the tests and README):
- No standard errors or denominators are published. Each year's standard error is the binomial one CMS uses for
  rates, sqrt(p (100 - p) / n), with p the score clipped to [0.5, 99.5] and n = ASSUMED_DENOMINATOR for every
  measure (CAHPS, complaints and price accuracy have their own formulas at CMS); the change's standard error is
  sqrt(se1^2 + se2^2 - 2 r se1 se2) with r each measure's correlation across the contracts scored in both years,
  as CMS computes it.
- "Specification change" and "required measures" are read from the crosswalk: a measure counts when its
  measure_key is rated in both star years; the minimum is half the part's measures any contract could have
  (CMS's Table 4 varies it by contract type, which the public tables do not carry).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stars_assets.lib.cms import crosswalk
from stars_assets.lib.cms.rating import RATING_PRECISION, measure_star

# Fixed a priori near HEDIS's hybrid sample (411 members), not fitted: only 2026's improvement bands are stored here,
# so there is no earlier pair to fit it on (on 2025 -> 2026, 1,000 matched more stars; see the README's outlook section).
ASSUMED_DENOMINATOR = 400
SIGNIFICANCE_Z = 1.96
SCORE_COLUMNS = ["contract_id", "measure_key", "value", "stars"]
IMPROVEMENT_COLUMNS = ["contract_id", "part", "measure_id", "eligible_measures", "improved", "declined", "score"]


def improvement_measures(prior_year: int, current_year: int) -> pd.DataFrame:
    """The measures each part's improvement uses (indexed by measure_key): rated in both star years, not themselves
    improvement measures, with the current year's weight, part and direction; plus the improvement measure ids."""
    current = crosswalk.year_measures(current_year).reset_index().set_index("measure_key")
    prior_keys = set(crosswalk.year_measures(prior_year)["measure_key"])
    used = current[~current["improvement"] & current.index.isin(prior_keys)]
    return used[["measure_id", "part", "weight", "higher_is_better"]]


def score_correlations(prior: pd.DataFrame, current: pd.DataFrame) -> pd.Series:
    """Per measure_key, the correlation of contracts' scores between the two years (contracts scored in both)."""
    joined = prior.merge(current, on=["contract_id", "measure_key"], suffixes=("_prior", "_current")).dropna(
        subset=["value_prior", "value_current"]
    )
    return (
        joined.groupby("measure_key")[["value_prior", "value_current"]]
        .apply(lambda rows: rows["value_prior"].corr(rows["value_current"]) if len(rows) > 2 else 0.0)
        .fillna(0.0)
    )


def _standard_error(score: pd.Series, denominator: float) -> pd.Series:
    p = score.clip(0.5, 99.5)
    return np.sqrt(p * (100 - p) / denominator)


def improvement_scores(
    prior: pd.DataFrame,
    current: pd.DataFrame,
    prior_year: int,
    current_year: int,
    correlations: pd.Series | None = None,
    denominator: float = ASSUMED_DENOMINATOR,
) -> pd.DataFrame:
    """Per contract and part, the improvement score from `prior` and `current` scores (contract_id, measure_key,
    value, stars; stars may be missing, then no 5-star hold-harmless). NaN score where the contract has both years'
    scores on fewer than half the part's measures. `correlations` default to those of the two tables given."""
    measures = improvement_measures(prior_year, current_year)
    correlations = score_correlations(prior, current) if correlations is None else correlations
    joined = prior[SCORE_COLUMNS].merge(
        current[SCORE_COLUMNS], on=["contract_id", "measure_key"], suffixes=("_prior", "_current")
    )
    joined = joined[joined["measure_key"].isin(measures.index)].dropna(subset=["value_prior", "value_current"])
    meta = measures.loc[joined["measure_key"]]
    change = (joined["value_current"] - joined["value_prior"]).to_numpy()
    change = np.where(meta["higher_is_better"].to_numpy(dtype=bool), change, -change)
    se_prior = _standard_error(joined["value_prior"], denominator).to_numpy()
    se_current = _standard_error(joined["value_current"], denominator).to_numpy()
    r = joined["measure_key"].map(correlations).fillna(0.0).clip(upper=0.99).to_numpy()
    se_change = np.sqrt(np.maximum(se_prior**2 + se_current**2 - 2 * r * se_prior * se_current, 1e-12))
    z = change / se_change
    five_both = (joined["stars_prior"].astype("Float64") == 5) & (joined["stars_current"].astype("Float64") == 5)
    joined = joined.assign(
        part=meta["part"].to_numpy(),
        weight=meta["weight"].to_numpy(dtype=float),
        improved=z > SIGNIFICANCE_Z,
        declined=(z < -SIGNIFICANCE_Z) & ~five_both.fillna(False).to_numpy(dtype=bool),
    )
    required = measures.groupby("part").size().map(lambda n: math.ceil(n / 2))
    improvement_ids = crosswalk.year_measures(current_year).reset_index()
    improvement_ids = dict(
        zip(
            improvement_ids.loc[improvement_ids["improvement"], "part"],
            improvement_ids.loc[improvement_ids["improvement"], "measure_id"],
        )
    )
    records = []
    for (contract_id, part), rows in joined.groupby(["contract_id", "part"]):
        net = float((rows["weight"] * (rows["improved"].astype(int) - rows["declined"].astype(int))).sum())
        eligible = len(rows) >= required[part]
        records.append(
            {
                "contract_id": contract_id,
                "part": part,
                "measure_id": improvement_ids.get(part),
                "eligible_measures": len(rows),
                "improved": int(rows["improved"].sum()),
                "declined": int(rows["declined"].sum()),
                "score": round(net / float(rows["weight"].sum()), RATING_PRECISION) if eligible else math.nan,
            }
        )
    return pd.DataFrame.from_records(records, columns=IMPROVEMENT_COLUMNS)


def improvement_stars(scores: pd.DataFrame, cut_points: pd.DataFrame, org_type: str = "MA-PD") -> pd.DataFrame:
    """`improvement_scores` with the stars the improvement measures' cut points give (NA without a score)."""
    rated = scores.copy()
    rated["stars"] = pd.array(
        [measure_star(m, s, cut_points, org_type) if pd.notna(s) else None for m, s in zip(rated["measure_id"], rated["score"])],
        dtype="Int64",
    )
    return rated
