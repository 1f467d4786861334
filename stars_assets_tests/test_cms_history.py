"""Every published star year (2023-2026) through one reader, the measure crosswalk, and each year's rules
reproducing that year's published overall ratings."""

import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.defs.cms.assets import reproduction_by_year
from stars_assets.lib.cms import crosswalk, rating, reproduction, tables

YEARS = [2023, 2024, 2025, 2026]


@pytest.fixture(scope="module")
def history() -> dict[str, pd.DataFrame]:
    folders = [settings.cms_reference_dir(year) for year in YEARS]
    return {
        "measure_stars": pd.concat([tables.measure_stars(folder) for folder in folders], ignore_index=True),
        "summary_ratings": pd.concat([tables.summary_ratings(folder) for folder in folders], ignore_index=True),
        "cai": pd.concat([tables.cai(folder) for folder in folders if (folder / tables.CAI_FILE).exists()], ignore_index=True),
    }


def test_every_published_year_is_read(history):
    assert tables.available_star_years() == YEARS
    stars = history["measure_stars"]
    assert sorted(stars["star_year"].unique()) == YEARS
    for year, year_stars in stars.groupby("star_year"):
        assert year_stars["stars"].notna().sum() > 10_000, year
        assert year_stars["contract_id"].str.fullmatch(r"[A-Z]\d{4}").all()
    assert history["summary_ratings"].groupby("star_year")["overall"].count().gt(500).all()


def test_crosswalk_maps_every_star_measure_of_every_year(history):
    published = history["measure_stars"][["star_year", "measure_id", "measure_name"]].drop_duplicates()
    keyed = crosswalk.with_measure_keys(published)  # raises on any unmapped (year, id)
    assert keyed["measure_key"].notna().all()
    # The crosswalk's name is the published name of that year's id, so ids cannot be shifted by a year.
    names = keyed.merge(crosswalk.crosswalk(), on=["star_year", "measure_id"], suffixes=("", "_crosswalk"))
    assert (names["measure_name"] == names["measure_name_crosswalk"]).all()
    # One key per measure across years, even where CMS renumbered it.
    readmissions = {year: crosswalk.measure_id("plan_all_cause_readmissions", year) for year in (2024, 2025, 2026)}
    assert readmissions[2025] != readmissions[2026]
    assert len(crosswalk.crosswalk().query("star_year == 2026")) == published.query("star_year == 2026")["measure_id"].nunique()


def test_crosswalk_rejects_an_unknown_measure():
    with pytest.raises(KeyError, match="missing from"):
        crosswalk.with_measure_keys(pd.DataFrame({"star_year": [2026], "measure_id": ["C99"]}))


def test_each_year_has_rules_from_the_crosswalk():
    for year in YEARS:
        rules = rating.rules_for(year)
        assert set(rules.weights) == set(crosswalk.year_measures(year).index)
        assert len(rules.improvement_measures) == 2 and len(rules.overall_duplicates) == 2
    # Patient experience, complaints and access weighed 4 until 2025 and 2 from 2026.
    service = {year: rating.rules_for(year).weights[crosswalk.measure_id("customer_service", year)] for year in YEARS}
    assert service == {2023: 4.0, 2024: 4.0, 2025: 4.0, 2026: 2.0}


def test_each_years_rules_reproduce_its_published_overall_ratings(history):
    recomputed = rating.overall_ratings(history["measure_stars"], history["cai"], history["summary_ratings"])
    reports = reproduction_by_year(recomputed, history["summary_ratings"])
    print("\n" + reproduction.reports_table(reports).to_string(index=False))
    assert sorted(reports) == YEARS
    for year, report in reports.items():
        assert report.passed(), (year, report.match_rate, report.cai_range_rate)
        assert report.cai_published == (year >= 2025)
    # Years whose CAI is published must match exactly, contract by contract.
    assert reports[2025].match_rate >= reproduction.REQUIRED_MATCH_RATE
    assert reports[2026].match_rate >= reproduction.REQUIRED_MATCH_RATE


def test_reproduction_fails_with_another_years_weights(history):
    """The per-year rules matter: 2025's stars rated with 2026's weights miss many published ratings."""
    stars = history["measure_stars"].query("star_year == 2025")
    keyed = crosswalk.with_measure_keys(stars)
    as_2026_ids = keyed[keyed["measure_key"].isin(crosswalk.ids_by_key(2026))].copy()
    as_2026_ids["measure_id"] = as_2026_ids["measure_key"].map(crosswalk.ids_by_key(2026))
    summary = history["summary_ratings"].query("star_year == 2025")
    recomputed = rating.overall_ratings(
        as_2026_ids[stars.columns], history["cai"].query("star_year == 2025"), summary, rules=rating.rules_for(2026)
    )
    assert not reproduction.compare_overall_ratings(recomputed, summary).passed()
