"""Parsers for CMS's Part C & D Star Ratings data tables, as CMS publishes them.

Each table is read from a star-year folder (`data/reference/cms/<year>/`) and returned as a tidy
pandas DataFrame. The files carry quirks every year: a UTF-8 byte-order mark, title and domain rows
above the header, a row of "C01: name" labels and a row of date ranges, contract ids padded with
spaces, en dashes stored as mis-decoded bytes, values as text ("76%", "4", "0.08") or as a reason
why there is no value ("Plan too small to be measured"). Rows and columns are located by their
content rather than by position, so next year's folder parses without code changes as long as CMS
keeps the same labels.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from stars_assets import settings

MEASURE_DATA_FILE = "Measure Data.csv"
MEASURE_STARS_FILE = "Measure Stars.csv"
SUMMARY_RATINGS_FILE = "Summary Ratings.csv"
CAI_FILE = "CAI.csv"
CUT_POINT_FILES = {"C": "Part C Cut Points.csv", "D": "Part D Cut Points.csv"}

# Org type given to cut points published without one (CMS's Part C table applies to every contract).
ALL_ORG_TYPES = "All"

REASON_CODES = {
    "not enough data available": "not_enough_data",
    "plan too small to be measured": "too_small",
    "plan too new to be measured": "too_new",
    "plan not required to report measure": "not_required",
    "not required to report": "not_required",
    "cms identified issues with this plan's data": "data_issue",
    "not applicable": "not_applicable",
    "n/a": "not_applicable",
    "no data available": "no_data",
    "medicare shows only a star rating for this topic": "star_only",
    "benefit not offered by plan": "benefit_not_offered",
}

_TYPOGRAPHIC_TO_ASCII = {"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}


def _mis_decoded_forms(character: str) -> set[str]:
    """How a UTF-8 character reads after a wrong decode as Windows-1252 or Latin-1 ("–" -> "â€“")."""
    encoded = character.encode("utf-8")
    forms = {encoded.decode("latin-1")}
    try:
        forms.add(encoded.decode("cp1252"))
    except UnicodeDecodeError:  # cp1252 leaves a few bytes undefined
        pass
    return forms


# Longest first so a mis-decoded sequence is replaced before any of its pieces.
_TEXT_REPLACEMENTS = sorted(
    [(form, ascii_text) for char, ascii_text in _TYPOGRAPHIC_TO_ASCII.items() for form in _mis_decoded_forms(char)]
    + list(_TYPOGRAPHIC_TO_ASCII.items()),
    key=lambda pair: -len(pair[0]),
)

_NUMBER = r"-?\d+(?:\.\d+)?"
_NUMERIC_VALUE = re.compile(rf"^({_NUMBER})\s*%?$")
_MEASURE_LABEL = re.compile(r"^([CD]\d{2}):\s*(.+)$")
_CONTRACT_ID = re.compile(r"^[A-Z]\d{4}$")
_STAR_LABEL = re.compile(r"^(\d)\s*stars?$", re.IGNORECASE)
_CUT_POINT_CLAUSE = re.compile(rf"^(>=|<=|>|<)?\s*({_NUMBER})\s*%?$")
# "Contract Number" (2026 layout) or "CONTRACT_ID" (2023-2025 layout)
CONTRACT_HEADER = r"contract[ _](number|id)"


def clean_text(text: str) -> str:
    """Trim, repair mis-decoded punctuation and fold typographic dashes and quotes to ASCII."""
    for wrong, right in _TEXT_REPLACEMENTS:
        text = text.replace(wrong, right)
    return " ".join(text.split())


def reason_code(text: str) -> str:
    """Short snake_case code for a CMS reason text; unknown texts get a slug so nothing is lost."""
    cleaned = clean_text(text).lower()
    return REASON_CODES.get(cleaned) or re.sub(r"[^a-z0-9]+", "_", cleaned).strip("_") or "blank"


def parse_value(text: str) -> tuple[float, str | None]:
    """(value, None) for "76%", "4", "0.08", "-0.12"; (NaN, reason code) for anything else."""
    cleaned = clean_text(text)
    number = _NUMERIC_VALUE.match(cleaned)
    if number:
        return float(number.group(1)), None
    return math.nan, reason_code(cleaned)


def available_star_years() -> list[int]:
    """Star years with a folder of CMS tables under data/reference/cms, oldest first."""
    # settings names one folder per star year; their common parent holds them all.
    root = settings.cms_reference_dir(0).parent
    return sorted(int(folder.name) for folder in root.iterdir() if folder.is_dir() and folder.name.isdigit())


def _star_year(year_dir: Path) -> int:
    return int(Path(year_dir).name)


def _read_grid(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every cell as published and as cleaned text, same shape."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")  # drops the byte-order mark
    except UnicodeDecodeError:
        text = data.decode("cp1252")  # CMS has also published Windows-1252 files
    published = pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False)
    return published, published.map(clean_text)


def _measure_columns(grid: pd.DataFrame) -> dict[int, tuple[str, str]]:
    """{column: (measure_id, measure_name)} from the first row of "C01: name" labels."""
    for _, row in grid.iterrows():
        labels = {col: _MEASURE_LABEL.match(cell) for col, cell in row.items()}
        found = {col: (match.group(1), match.group(2)) for col, match in labels.items() if match}
        if found:
            return found
    raise ValueError("no row of 'C01: name' measure labels found")


def _contract_rows(grid: pd.DataFrame) -> pd.DataFrame:
    return grid[grid[0].str.match(_CONTRACT_ID)]


def _measure_table(year_dir: Path, file_name: str) -> pd.DataFrame:
    """Long table (contract, measure, cell as published) from Measure Data or Measure Stars."""
    published, grid = _read_grid(Path(year_dir) / file_name)
    measures = _measure_columns(grid)
    contracts = _contract_rows(grid)
    records = [
        (contract_id, measure_id, measure_name, raw)
        for col, (measure_id, measure_name) in measures.items()
        for contract_id, raw in zip(contracts[0], published.loc[contracts.index, col])
    ]
    table = pd.DataFrame(records, columns=["contract_id", "measure_id", "measure_name", "raw"])
    table.insert(0, "star_year", _star_year(year_dir))
    return table.sort_values(["contract_id", "measure_id"], ignore_index=True)


def measure_scores(year_dir: Path) -> pd.DataFrame:
    """Measure Data: one row per contract and measure with the numeric score or a reason code.

    Percentages stay in percentage points ("76%" -> 76.0), the unit of the cut points.
    """
    table = _measure_table(year_dir, MEASURE_DATA_FILE)
    parsed = table["raw"].map(parse_value)
    table.insert(4, "value", parsed.map(lambda pair: pair[0]).astype(float))
    table.insert(5, "reason", parsed.map(lambda pair: pair[1]))
    return table


def measure_stars(year_dir: Path) -> pd.DataFrame:
    """Measure Stars: one row per contract and measure with stars 1..5 (nullable) or a reason code."""
    table = _measure_table(year_dir, MEASURE_STARS_FILE)
    parsed = table["raw"].map(parse_value)
    stars = parsed.map(lambda pair: pair[0])
    if not stars.dropna().isin([1, 2, 3, 4, 5]).all():
        raise ValueError(f"measure stars outside 1..5 in {MEASURE_STARS_FILE}")
    table.insert(4, "stars", stars.astype("Int64"))
    table.insert(5, "reason", parsed.map(lambda pair: pair[1]))
    return table


def _column_reader(grid: pd.DataFrame, star_year: int) -> Callable[[str], pd.Series]:
    """Look up a column of the contract rows by a pattern matching its header.

    Headers lose their star-year prefix ("2026 Overall" -> "Overall") so patterns hold across years.
    """
    header_row = grid.index[grid[0].str.lower().isin(["contract number", "contract_id"])][0]
    rows = _contract_rows(grid.iloc[header_row + 1 :])
    headers = {col: header.removeprefix(f"{star_year} ") for col, header in grid.iloc[header_row].items()}

    def column(pattern: str) -> pd.Series:
        for col, header in headers.items():
            if re.fullmatch(pattern, header, flags=re.IGNORECASE):
                return rows[col].reset_index(drop=True)
        raise ValueError(f"no column header matching {pattern!r}")

    return column


def _rating_columns(values: pd.Series, name: str) -> pd.DataFrame:
    parsed = values.map(parse_value)
    return pd.DataFrame(
        {name: parsed.map(lambda pair: pair[0]).astype(float), f"{name}_reason": parsed.map(lambda pair: pair[1])}
    )


def summary_ratings(year_dir: Path) -> pd.DataFrame:
    """Summary Ratings: Part C, Part D and overall ratings per contract (NaN plus a reason when not rated).

    The disaster columns are the percentages of members in FEMA Individual Assistance areas in the two
    measurement years before the star year; they decide CMS's disaster hold-harmless provisions.
    """
    star_year = _star_year(year_dir)
    _, grid = _read_grid(Path(year_dir) / SUMMARY_RATINGS_FILE)
    column = _column_reader(grid, star_year)

    def disaster_pct(years_before: int) -> pd.Series:
        return column(rf"{star_year - years_before} Disaster %").map(lambda text: parse_value(text)[0])

    table = pd.DataFrame(
        {
            "star_year": star_year,
            "contract_id": column(CONTRACT_HEADER),
            "organization_type": column("organization type"),
            "contract_name": column("contract name"),
            "organization_marketing_name": column("organization marketing name"),
            "parent_organization": column("parent organization"),
            "snp": column("snp").str.lower().eq("yes"),
            "disaster_pct_measurement_year": disaster_pct(2),
            "disaster_pct_prior_measurement_year": disaster_pct(3),
        }
    )
    ratings = [
        _rating_columns(column(r"part c summary"), "part_c_summary"),
        _rating_columns(column(r"part d summary"), "part_d_summary"),
        _rating_columns(column(r"overall"), "overall"),
    ]
    return pd.concat([table, *ratings], axis=1).sort_values("contract_id", ignore_index=True)


CAI_COLUMNS = {
    "star_year": "int64",
    "contract_id": "object",
    "puerto_rico_only": "bool",
    "part_c_fac": "Int64",
    "part_d_mapd_fac": "Int64",
    "part_d_pdp_fac": "Int64",
    "overall_fac": "Int64",
}


def cai(year_dir: Path) -> pd.DataFrame:
    """CAI: each contract's final adjustment category (1..9, nullable) per rating, and the Puerto Rico flag.

    Empty for a star year whose CAI table is not published here (2023, 2024)."""
    star_year = _star_year(year_dir)
    if not (Path(year_dir) / CAI_FILE).exists():
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in CAI_COLUMNS.items()})
    _, grid = _read_grid(Path(year_dir) / CAI_FILE)
    column = _column_reader(grid, star_year)

    def category(pattern: str) -> pd.Series:
        return column(pattern).map(lambda text: parse_value(text)[0]).astype("Int64")

    table = pd.DataFrame(
        {
            "star_year": star_year,
            "contract_id": column(CONTRACT_HEADER),
            "puerto_rico_only": column("puerto rico only").str.lower().eq("yes"),
            "part_c_fac": category("part c fac"),
            "part_d_mapd_fac": category("part d ma-pd fac"),
            "part_d_pdp_fac": category("part d pdp fac"),
            "overall_fac": category("overall fac"),
        }
    )
    return table.sort_values("contract_id", ignore_index=True)


def parse_cut_point(text: str) -> dict:
    """Bounds of one published star band.

    ">= 45 % to < 79 %" -> lower 45 inclusive, upper 79 exclusive; "< 45 %" -> open below;
    "> 0.71 to <= 1.34" -> lower exclusive, upper inclusive; a bare "100%" is the single value 100.
    Open ends are None.
    """
    band = {"lower": None, "upper": None, "lower_inclusive": False, "upper_inclusive": False}
    for clause in clean_text(text).split(" to "):
        match = _CUT_POINT_CLAUSE.match(clause.strip())
        if not match:
            raise ValueError(f"unreadable cut point {text!r}")
        operator, number = match.group(1), float(match.group(2))
        if operator in (">=", ">", None):
            band.update(lower=number, lower_inclusive=operator != ">")
        if operator in ("<=", "<", None):
            band.update(upper=number, upper_inclusive=operator != "<")
    return band


def _decimals(text: str) -> int:
    return max((len(fraction) for fraction in re.findall(r"\.(\d+)", text)), default=0)


def _cut_point_file(path: Path, part: str) -> pd.DataFrame:
    published, grid = _read_grid(path)
    measures = _measure_columns(grid)
    star_column = next(col for col in grid.columns if grid[col].str.match(_STAR_LABEL).any())
    org_type_column = next((col for col in grid.columns if (grid[col].str.lower() == "org type").any()), None)
    records = []
    for row_index, row in grid[grid[star_column].str.match(_STAR_LABEL)].iterrows():
        stars = int(_STAR_LABEL.match(row[star_column]).group(1))
        org_type = row[org_type_column] if org_type_column is not None else ALL_ORG_TYPES
        for col, (measure_id, measure_name) in measures.items():
            records.append(
                {
                    "part": part,
                    "org_type": org_type,
                    "measure_id": measure_id,
                    "measure_name": measure_name,
                    "stars": stars,
                    **parse_cut_point(row[col]),
                    "decimals": _decimals(row[col]),
                    "raw": published.loc[row_index, col],
                }
            )
    return pd.DataFrame(records)


def _band_anchor(band: pd.Series) -> float:
    """A finite point of a band, to tell which end of the scale it sits at."""
    return band["lower"] if pd.notna(band["lower"]) else band["upper"]


def cut_points(year_dir: Path) -> pd.DataFrame:
    """Part C and Part D cut points: one row per org type, measure and star band.

    `higher_is_better` compares where the 5-star and 1-star bands sit; `decimals` is the precision of the
    published thresholds, the precision CMS rounds a score to before placing it in a band.
    """
    year_dir = Path(year_dir)
    columns = [
        "star_year",
        "part",
        "org_type",
        "measure_id",
        "measure_name",
        "stars",
        "lower",
        "upper",
        "lower_inclusive",
        "upper_inclusive",
        "higher_is_better",
        "decimals",
        "raw",
    ]
    if not all((year_dir / file_name).exists() for file_name in CUT_POINT_FILES.values()):
        # Years without CMS's cut-point files here: their thresholds are in the compiled table
        # (published_thresholds), which the back-test reads.
        return pd.DataFrame(columns=columns)
    table = pd.concat(
        [_cut_point_file(year_dir / file_name, part) for part, file_name in CUT_POINT_FILES.items()],
        ignore_index=True,
    )
    keys = ["org_type", "measure_id"]
    anchors = table.set_index([*keys, "stars"]).apply(_band_anchor, axis=1)
    direction = (anchors.xs(5, level="stars") > anchors.xs(1, level="stars")).rename("higher_is_better")
    table = table.join(direction, on=keys)
    table["decimals"] = table.groupby(keys)["decimals"].transform("max")
    table.insert(0, "star_year", _star_year(year_dir))
    return table[columns].sort_values(["part", "org_type", "measure_id", "stars"], ignore_index=True)


PUBLISHED_THRESHOLDS_FILE = "cut_points_2023_2026.csv"
THRESHOLD_COLUMNS = {2: "two_star", 3: "three_star", 4: "four_star", 5: "five_star"}


def published_thresholds(path: Path) -> pd.DataFrame:
    """The compiled table of published MA-PD cut points, 2023 on: one row per star year, measure (the compiler's
    `cut_point_code`, which the crosswalk maps to each year's CMS id) and star level 2..5 with its threshold
    (at or above for higher-is-better measures, at or below for lower-is-better ones)."""
    compiled = pd.read_csv(path, dtype={"measure_code": str})
    compiled["measure_name"] = compiled["measure_name"].map(clean_text)
    long = compiled.melt(
        id_vars=["measure_code", "measure_name", "domain", "star_year"],
        value_vars=list(THRESHOLD_COLUMNS.values()),
        var_name="level",
        value_name="threshold",
    )
    long["stars"] = long["level"].map({name: stars for stars, name in THRESHOLD_COLUMNS.items()})
    long = long.rename(columns={"measure_code": "cut_point_code"}).drop(columns=["level", "domain"])
    return long.sort_values(["star_year", "cut_point_code", "stars"], ignore_index=True)
