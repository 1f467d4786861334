"""Does the rating engine reproduce CMS's published overall ratings? A pure comparison, used by the
asset check and the tests."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# The engine must match at least this share of published numeric overall ratings exactly.
REQUIRED_MATCH_RATE = 0.99

MISMATCH_COLUMNS = [
    "star_year", "contract_id", "published", "recomputed",
    "weighted_mean_with_improvement", "weighted_mean_without_improvement",
    "variance_with_improvement", "reward_factor_with_improvement", "reward_factor_without_improvement",
    "cai_value", "unrounded_with_improvement", "unrounded_without_improvement",
    "used_improvement", "used_new_measures",
]


@dataclass(frozen=True)
class ReproductionReport:
    total: int
    matches: int
    # One row per contract whose published numeric rating was not reproduced exactly (or not rated at all).
    mismatches: pd.DataFrame

    @property
    def match_rate(self) -> float:
        return self.matches / self.total if self.total else 0.0

    def passed(self, required_rate: float = REQUIRED_MATCH_RATE) -> bool:
        return self.total > 0 and self.match_rate >= required_rate


def compare_overall_ratings(recomputed: pd.DataFrame, published: pd.DataFrame) -> ReproductionReport:
    """Compare `overall_rating` (recomputed) with `overall` (Summary Ratings) for every contract CMS
    published a numeric overall rating for; a contract the engine did not rate counts as a mismatch."""
    rated = published.loc[published["overall"].notna(), ["star_year", "contract_id", "overall"]]
    joined = rated.merge(recomputed, on=["star_year", "contract_id"], how="left").rename(
        columns={"overall": "published", "overall_rating": "recomputed"}
    )
    matched = joined["published"] == joined["recomputed"]
    mismatches = joined.loc[~matched, MISMATCH_COLUMNS].reset_index(drop=True)
    return ReproductionReport(total=len(joined), matches=int(matched.sum()), mismatches=mismatches)
