"""Parsing CMS's Star Ratings tables: the real 2026 files and the quirks CMS files carry."""

import math

import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.lib.cms import tables

YEAR_DIR = settings.cms_reference_dir(2026)
CONTRACT_ID = r"^[A-Z]\d{4}$"


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return tables.summary_ratings(YEAR_DIR)


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return tables.measure_scores(YEAR_DIR)


@pytest.fixture(scope="module")
def stars() -> pd.DataFrame:
    return tables.measure_stars(YEAR_DIR)


@pytest.fixture(scope="module")
def cut_points() -> pd.DataFrame:
    return tables.cut_points(YEAR_DIR)


def test_star_years_come_from_folder_names():
    assert 2026 in tables.available_star_years()


def test_overall_ratings_2026_count_and_distribution(summary):
    rated = summary["overall"].dropna()
    assert len(rated) == 516
    assert rated.value_counts().sort_index().to_dict() == {2.0: 2, 2.5: 21, 3.0: 111, 3.5: 175, 4.0: 116, 4.5: 73, 5.0: 18}
    # Every contract without a numeric overall rating says why.
    assert summary.loc[summary["overall"].isna(), "overall_reason"].notna().all()
    assert set(summary["overall_reason"].dropna()) == {"not_enough_data", "too_new", "not_applicable"}


def test_contract_ids_are_trimmed_in_every_table(summary, scores, stars, cut_points):
    assert "H0028 ," in (YEAR_DIR / tables.MEASURE_STARS_FILE).read_text(encoding="utf-8-sig")
    for table in (summary, scores, stars, tables.cai(YEAR_DIR)):
        assert table["contract_id"].str.match(CONTRACT_ID).all()
    assert summary["contract_id"].is_unique


def test_long_tables_have_one_row_per_contract_and_measure(scores, stars, summary):
    assert len(stars) == len(summary) * 45
    assert not stars.duplicated(["contract_id", "measure_id"]).any()
    assert sorted(stars["measure_id"].unique()) == [f"C{i:02d}" for i in range(1, 34)] + [f"D{i:02d}" for i in range(1, 13)]
    assert len(scores) == len(stars)


def test_percent_and_plain_numbers_are_parsed(scores):
    h0028 = scores[scores["contract_id"] == "H0028"].set_index("measure_id")
    assert (h0028.loc["C01", "raw"], h0028.loc["C01", "value"]) == ("76%", 76.0)
    assert (h0028.loc["C28", "raw"], h0028.loc["C28", "value"]) == ("0.16", 0.16)
    assert h0028.loc["C01", "reason"] is None


def test_reason_codes_are_kept(scores, stars):
    assert set(scores["reason"].dropna()) == {
        "too_new",
        "not_enough_data",
        "not_required",
        "too_small",
        "star_only",
        "no_data",
        "data_issue",
        "benefit_not_offered",
    }
    issue = scores[scores["reason"] == "data_issue"].iloc[0]
    assert math.isnan(issue["value"]) and issue["raw"].startswith("CMS identified issues")
    # Exactly one of value / reason on every row.
    assert (scores["value"].isna() == scores["reason"].notna()).all()
    assert (stars["stars"].isna() == stars["reason"].notna()).all()
    assert stars["stars"].dropna().between(1, 5).all()


def test_measure_names_have_dashes_fixed(scores, cut_points):
    names = scores.drop_duplicates("measure_id").set_index("measure_id")["measure_name"]
    assert names["C08"] == "Care for Older Adults - Medication Review"
    assert names["D01"] == "Call Center - Foreign Language Interpreter and TTY Availability"
    for column in (names, cut_points["measure_name"]):
        assert not column.str.contains("[\u2013\u2019\u00e2]").any()


@pytest.mark.parametrize(
    "published, cleaned",
    [
        ("Care for Older Adults \u00e2\u20ac\u201c Medication Review ", "Care for Older Adults - Medication Review"),
        ("Care for Older Adults \u00e2\u0080\u0093 Pain Assessment", "Care for Older Adults - Pain Assessment"),
        ("Diabetes Care \u2013 Eye Exam", "Diabetes Care - Eye Exam"),
        ("Drug Plan\u00e2\u20ac\u2122s Performance", "Drug Plan's Performance"),
    ],
)
def test_clean_text_repairs_mis_decoded_and_typographic_dashes(published, cleaned):
    assert tables.clean_text(published) == cleaned


@pytest.mark.parametrize(
    "text, value, reason",
    [
        ("76%", 76.0, None),
        (" 4 ", 4.0, None),
        ("0.08", 0.08, None),
        ("-0.121368", -0.121368, None),
        ("Plan too small to be measured ", math.nan, "too_small"),
        ("CMS identified issues with this plan\u00e2\u20ac\u2122s data", math.nan, "data_issue"),
        ("Not Applicable", math.nan, "not_applicable"),
        ("A reason CMS adds next year", math.nan, "a_reason_cms_adds_next_year"),
    ],
)
def test_parse_value(text, value, reason):
    parsed_value, parsed_reason = tables.parse_value(text)
    assert parsed_reason == reason
    assert parsed_value == value or (math.isnan(value) and math.isnan(parsed_value))


@pytest.mark.parametrize(
    "text, lower, upper, lower_inclusive, upper_inclusive",
    [
        (">= 45 % to < 79 %", 45.0, 79.0, True, False),
        ("< 45 %", None, 45.0, False, False),
        ("> 0.71 to <= 1.34", 0.71, 1.34, False, True),
        ("<= 7 %", None, 7.0, False, True),
        (">= -0.233766 to < 0 ", -0.233766, 0.0, True, False),
        ("100%", 100.0, 100.0, True, True),
    ],
)
def test_parse_cut_point(text, lower, upper, lower_inclusive, upper_inclusive):
    assert tables.parse_cut_point(text) == {
        "lower": lower,
        "upper": upper,
        "lower_inclusive": lower_inclusive,
        "upper_inclusive": upper_inclusive,
    }


def test_cut_points_c01_lower_bounds(cut_points):
    c01 = cut_points[cut_points["measure_id"] == "C01"].set_index("stars")
    assert set(c01["org_type"]) == {tables.ALL_ORG_TYPES}
    assert c01.loc[[2, 3, 4, 5], "lower"].tolist() == [58, 71, 76, 84]
    assert c01["lower_inclusive"].loc[[2, 3, 4, 5]].all()
    assert pd.isna(c01.loc[1, "lower"]) and pd.isna(c01.loc[5, "upper"])
    assert c01["higher_is_better"].all()


def test_cut_points_c18_is_lower_is_better(cut_points):
    c18 = cut_points[cut_points["measure_id"] == "C18"].set_index("stars")
    assert not c18["higher_is_better"].any()
    assert (c18.loc[5, "upper"], c18.loc[5, "upper_inclusive"]) == (7, True)
    assert c18.loc[[4, 3, 2], "upper"].tolist() == [9, 10, 12]
    assert (c18.loc[1, "lower"], c18.loc[1, "lower_inclusive"]) == (12, False)
    lower_is_better = set(cut_points.loc[~cut_points["higher_is_better"], "measure_id"])
    assert lower_is_better == {"C18", "C28", "C29", "D02", "D03"}


def test_part_d_cut_points_by_org_type(cut_points):
    part_d = cut_points[cut_points["part"] == "D"]
    assert set(part_d["org_type"]) == {"MA-PD", "PDP"}
    # 33 Part C measures x 5 bands + 12 Part D measures x 5 bands x 2 org types.
    assert len(cut_points) == 33 * 5 + 12 * 5 * 2
    d08 = part_d[(part_d["measure_id"] == "D08") & (part_d["org_type"] == "MA-PD")].set_index("stars")
    assert d08.loc[[2, 3, 4, 5], "lower"].tolist() == [83, 86, 89, 92]


def test_cai_categories():
    cai = tables.cai(YEAR_DIR)
    assert cai["overall_fac"].dropna().between(1, 9).all()
    assert cai.set_index("contract_id").loc["H0028", "overall_fac"] == 4
    assert cai["puerto_rico_only"].sum() == 7
    assert str(cai["overall_fac"].dtype) == "Int64"


def test_a_new_star_year_is_a_new_folder(tmp_path):
    """Next year's file, with the quirks (BOM, title rows, mis-decoded dashes, padded ids), parses unchanged."""
    year_dir = tmp_path / "2027"
    year_dir.mkdir()
    rows = [
        "2027 Star View: Medicare Report Card Master Table,,,",
        "CONTRACT_ID,Organization Type,Contract Name,HD1: Staying Healthy",
        ",,,C01: Care for Older Adults \u00e2\u20ac\u201c Medication Review",
        ",,,01/01/2025 \u00e2\u20ac\u201c 12/31/2025",
        "H9999 ,Local CCP ,A PLAN ,4",
        "H9998 ,Local CCP ,ANOTHER PLAN ,Plan too new to be measured ",
    ]
    (year_dir / tables.MEASURE_STARS_FILE).write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode("utf-8"))
    parsed = tables.measure_stars(year_dir)
    assert parsed[["star_year", "contract_id", "measure_id", "measure_name"]].values.tolist() == [
        [2027, "H9998", "C01", "Care for Older Adults - Medication Review"],
        [2027, "H9999", "C01", "Care for Older Adults - Medication Review"],
    ]
    assert parsed["stars"].tolist()[1] == 4 and parsed["reason"].tolist()[0] == "too_new"
