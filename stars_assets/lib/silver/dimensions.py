"""Warehouse dimensions in silver: members with the identifier crosswalk, care gaps, Part D fills.

The warehouse sends full snapshots (members, care gaps) and daily fills; silver keeps the
latest version of each record, typed, with the snapshot it came from.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from stars_assets.lib.bronze.load import AUDIT_TABLES
from stars_assets.lib.bronze.tables import delivered_json
from stars_assets.lib.silver.identity import normalized_identifier_sql
from stars_assets.lib.silver.tables import CARE_GAPS, MEMBER_IDENTIFIERS, MEMBERS, RX_FILLS
from stars_assets.lib.tables import TableSpec, ddl
from stars_assets.lib.warehouse import ensure_tables, in_transaction

# Created empty when outreach arrives before the first enrollment snapshot: its rows are then
# quarantined as unknown members (and the coverage check says so) instead of failing the run.
MEMBER_TABLES_DDL = ddl(MEMBERS, MEMBER_IDENTIFIERS)

# A member's rows of the latest enrollment snapshot that holds it. When that snapshot holds the
# member twice with different values, neither version is trusted: both go to the quarantine
# (reason conflicting_duplicate) and the member is left out; identical repeats are one row.
LATEST_MEMBER_ROWS = """
SELECT b.*, count(DISTINCT b._record_hash) OVER (PARTITION BY trim(b.member_id), b._partition_date) AS versions
FROM bronze.edw_members AS b
QUALIFY b._partition_date = max(b._partition_date) OVER (PARTITION BY trim(b.member_id))
"""

MEMBERS_SQL = f"""
INSERT INTO silver.members BY NAME
SELECT trim(member_id) AS member_id, {normalized_identifier_sql("mbi", "mbi")} AS mbi, trim(vendor_ref) AS vendor_ref,
       try_cast(birth_date AS DATE) AS birth_date, sex, contract_id, region,
       try_cast(dual_status AS BOOLEAN) AS dual_status, try_cast(lis_status AS BOOLEAN) AS lis_status,
       try_cast(enrollment_start AS DATE) AS enrollment_start, try_cast(enrollment_end AS DATE) AS enrollment_end,
       try_cast(has_diabetes AS BOOLEAN) AS has_diabetes, try_cast(has_hypertension AS BOOLEAN) AS has_hypertension,
       try_cast(has_hyperlipidemia AS BOOLEAN) AS has_hyperlipidemia,
       _partition_date AS snapshot_date, _source_file AS source_file, _source_row AS source_row
FROM ({LATEST_MEMBER_ROWS}) AS latest
WHERE versions = 1
QUALIFY row_number() OVER (PARTITION BY trim(member_id) ORDER BY _source_file, _source_row) = 1
"""

MEMBER_CONFLICTS_SQL = (
    "DELETE FROM audit.quarantine WHERE layer = 'silver' AND dataset = 'members'",
    "INSERT INTO audit.quarantine SELECT 'silver', 'edw', 'members', _partition_date, _source_file, _source_row, "
    "'conflicting_duplicate', 'the member id appears in one snapshot with ' || versions || ' different sets of values', "
    f"{delivered_json('latest', 'versions')}, $run_id, $now FROM ({LATEST_MEMBER_ROWS}) AS latest WHERE versions > 1",
)

# The crosswalk every vendor identifier resolves through.
MEMBER_IDENTIFIERS_SQL = """
INSERT INTO silver.member_identifiers BY NAME
SELECT id_type, id_value, member_id, contract_id, region
FROM (
    SELECT 'member_id' AS id_type, member_id AS id_value, member_id, contract_id, region FROM silver.members
    UNION ALL SELECT 'mbi', mbi, member_id, contract_id, region FROM silver.members WHERE mbi IS NOT NULL
    UNION ALL SELECT 'vendor_ref', vendor_ref, member_id, contract_id, region FROM silver.members WHERE vendor_ref IS NOT NULL
)
"""

CARE_GAPS_SQL = """
INSERT INTO silver.care_gaps BY NAME
SELECT trim(gap_id) AS gap_id, trim(member_id) AS member_id, upper(trim(measure_code)) AS measure_code,
       upper(trim(cms_measure_id)) AS cms_measure_id, try_cast(measurement_year AS INTEGER) AS measurement_year,
       upper(trim(gap_status)) AS gap_status, try_cast(open_date AS DATE) AS open_date,
       try_cast(close_date AS DATE) AS close_date, close_source,
       _partition_date AS snapshot_date, _source_file AS source_file, _source_row AS source_row
FROM bronze.edw_care_gaps
QUALIFY row_number() OVER (PARTITION BY trim(gap_id) ORDER BY _partition_date DESC, _source_row) = 1
"""

RX_FILLS_SQL = """
INSERT INTO silver.rx_fills BY NAME
SELECT trim(fill_id) AS fill_id, trim(member_id) AS member_id, upper(trim(drug_class)) AS drug_class,
       try_cast(fill_date AS DATE) AS fill_date, try_cast(days_supply AS INTEGER) AS days_supply,
       _partition_date AS delivery_date, _source_file AS source_file, _source_row AS source_row
FROM bronze.edw_rx_fills
QUALIFY row_number() OVER (PARTITION BY trim(fill_id) ORDER BY _partition_date DESC, _source_row) = 1
"""


def _replace(con: duckdb.DuckDBPyConnection, *tables: tuple[TableSpec, str], also: tuple[tuple[str, dict], ...] = ()) -> None:
    """Recreate each table in its spec's shape and fill it (and run `also`), all in one transaction."""
    with in_transaction(con):
        for spec, fill in tables:
            con.execute(spec.ddl(replace=True))
            con.execute(fill)
        for statement, params in also:
            con.execute(statement, params)


def build_members(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> None:
    ensure_tables(con, *AUDIT_TABLES)
    now = datetime.now(UTC).replace(tzinfo=None)
    _replace(
        con,
        (MEMBERS, MEMBERS_SQL),
        (MEMBER_IDENTIFIERS, MEMBER_IDENTIFIERS_SQL),
        also=((MEMBER_CONFLICTS_SQL[0], {}), (MEMBER_CONFLICTS_SQL[1], {"run_id": run_id, "now": now})),
    )


def build_care_gaps(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> None:
    _replace(con, (CARE_GAPS, CARE_GAPS_SQL))


def build_rx_fills(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> None:
    _replace(con, (RX_FILLS, RX_FILLS_SQL))
