"""The silver and audit tables, each defined once (see lib/tables.py for what is derived from them)."""

from __future__ import annotations

from stars_assets.lib import vocabulary as v
from stars_assets.lib.tables import Column, TableSpec, coded, lineage, member_id, unique_text

MD5 = "md5 hex"
# What identifies an event, and the two forms silver stores: event_id (contracts.py checks its shape)
# and event_hash, the number duplicates are looked up by. md5 rather than hash(): a stored number must
# not change with the DuckDB release that computes it; 63 bits, because the lake (Delta) has no
# unsigned type; md5_number shifted, because md5_number_upper costs four times as much.
# {row}: "o.", "v." or "".
EVENT_KEY_TEXT = "{row}provider || ':' || {row}event_key"
EVENT_ID = f"md5({EVENT_KEY_TEXT})"
EVENT_HASH = f"CAST(md5_number({EVENT_KEY_TEXT}) >> 65 AS BIGINT)"
_RESOLVED = (
    member_id("internal member id, resolved through the crosswalk"),
    Column("contract_id", "VARCHAR", "the member's MA-PD contract", nullable=False),
    Column("region", "VARCHAR", "the member's region", nullable=False),
)
_LOADED = (
    Column("partition_date", "DATE", "delivery date", nullable=False),
    unique_text("record_hash", "md5 of the bronze row", looked_up=True),
    Column("loaded_at", "TIMESTAMP", "when this run wrote the row (UTC)", nullable=False),
    # The deduplication window is searched on this number instead of on the keys: scanning a month of keys
    # means decompressing every one of them. Last, because a table an older release made gains it at the
    # end, computed for the rows it holds so that their events are still found as duplicates.
    Column(
        "event_hash",
        "BIGINT",
        "63 bits of the md5 of provider and event key, as a number",
        nullable=False,
        backfill=EVENT_HASH.format(row=""),
    ),
)


def _event_identity(provider: str, key: str) -> tuple[Column, ...]:
    return (
        unique_text("event_id", f"md5 of provider and {key}", nullable=False, looked_up=True),
        Column("provider", "VARCHAR", provider, nullable=False),
        unique_text("event_key", key, nullable=False),
    )


APPOINTMENT_KEY = Column("appointment_key", "VARCHAR", "<provider>:<appointment id>", nullable=False)
APPOINTMENT_STATUS = coded("status", v.APPOINTMENT_STATUSES)
START_TS = Column("start_ts", "TIMESTAMP", "appointment start (UTC)", nullable=False)
VISIT_MEASURE = Column("measure_code", "VARCHAR", "care-gap measure the visit serves, where the EMR says")

OUTREACH_EVENTS = TableSpec(
    "silver.outreach_events",
    "One row per real-world outreach event from every outreach vendor, in one canonical schema.",
    (
        *_event_identity("outreach vendor", "the vendor's own event key"),
        *_RESOLVED,
        coded("channel", v.CHANNELS),
        coded("event_type", v.EVENT_TYPES),
        Column(
            "measure_codes", "VARCHAR[]", "care-gap measures the touch targeted (as the vendor says); else empty", nullable=False
        ),
        Column("event_ts", "TIMESTAMP", "UTC", nullable=False),
        *lineage(),
        *_LOADED,
    ),
    partition_column="partition_date",
    primary_key=("event_id",),
)

APPOINTMENT_EVENTS = TableSpec(
    "silver.appointment_events",
    "Every EMR message or FHIR resource version, with resolved member and UTC times.",
    (
        *_event_identity("EMR feed", "the message control id or resource version"),
        APPOINTMENT_KEY,
        *_RESOLVED,
        APPOINTMENT_STATUS,
        Column("event_ts", "TIMESTAMP", "when the EMR recorded the change (UTC)", nullable=False),
        START_TS,
        Column("booked_ts", "TIMESTAMP", "when the appointment was booked (UTC)"),
        VISIT_MEASURE,
        *lineage("line, message or bundle entry number in the source file"),
        *_LOADED,
    ),
    partition_column="partition_date",
    primary_key=("event_id",),
)

APPOINTMENTS = TableSpec(
    "silver.appointments",
    "Latest state of each appointment, keyed by a source-qualified id.",
    (
        APPOINTMENT_KEY,
        Column("provider", "VARCHAR", "EMR feed", nullable=False),
        *_RESOLVED,
        APPOINTMENT_STATUS,
        START_TS,
        Column("booked_ts", "TIMESTAMP", "first booking (UTC)"),
        Column("last_event_ts", "TIMESTAMP", "time of the latest event (UTC)", nullable=False),
        VISIT_MEASURE,
        Column("events", "BIGINT", "events in the appointment's history", nullable=False),
        Column("reschedules", "BIGINT", "events that moved the appointment", nullable=False),
        Column("state_hash", "VARCHAR", f"{MD5} of the state; a run writes only appointments whose hash changed", nullable=False),
        Column("updated_at", "TIMESTAMP", "when the state last changed (UTC)", nullable=False),
    ),
    primary_key=("appointment_key",),
    key_enforced=True,
)

MEMBERS = TableSpec(
    "silver.members",
    "Members from the latest enrollment snapshot; the source of the identifier crosswalk.",
    (
        member_id(),
        Column("mbi", "VARCHAR", "Medicare Beneficiary Identifier", identifier=True),
        Column("vendor_ref", "VARCHAR", "dialer vendor reference", identifier=True),
        Column("birth_date", "DATE", "date of birth", nullable=False, phi=True),
        Column("sex", "VARCHAR", ""),
        Column("contract_id", "VARCHAR", "MA-PD contract", nullable=False),
        Column("region", "VARCHAR", "", nullable=False),
        # try_cast(... AS BOOLEAN): a null is a value the cast could not read.
        Column("dual_status", "BOOLEAN", "dual eligible (Medicare and Medicaid)", nullable=False, phi=True),
        Column("lis_status", "BOOLEAN", "receives the Part D low-income subsidy", nullable=False, phi=True),
        Column("enrollment_start", "DATE", "", nullable=False),
        Column("enrollment_end", "DATE", "null while enrolled"),
        Column("has_diabetes", "BOOLEAN", "diagnosis flag", nullable=False, phi=True),
        Column("has_hypertension", "BOOLEAN", "diagnosis flag", nullable=False, phi=True),
        Column("has_hyperlipidemia", "BOOLEAN", "diagnosis flag", nullable=False, phi=True),
        Column("snapshot_date", "DATE", "delivery date of the snapshot this row came from", nullable=False),
        *lineage(),
    ),
    primary_key=("member_id",),
)

MEMBER_IDENTIFIERS = TableSpec(
    "silver.member_identifiers",
    "The crosswalk every vendor identifier resolves through: one row per (identifier type, value).",
    (
        coded("id_type", v.IDENTIFIER_TYPES),
        Column("id_value", "VARCHAR", "the identifier as vendors send it", nullable=False, identifier=True),
        member_id(),
        Column("contract_id", "VARCHAR", "", nullable=False),
        Column("region", "VARCHAR", "", nullable=False),
    ),
    primary_key=("id_type", "id_value"),
)

# The measure a care gap is for, as silver.care_gaps holds it and the gold gap facts carry it on.
GAP_MEASURE = (
    coded("measure_code", v.CARE_GAP_MEASURES),
    Column(
        "cms_measure_id",
        "VARCHAR",
        "CMS Star Ratings measure id, in the numbering the vendors send (see the measure crosswalk)",
        nullable=False,
    ),
)

CARE_GAPS = TableSpec(
    "silver.care_gaps",
    "Care gaps (member x measure x measurement year) from the latest care-gap list.",
    (
        Column("gap_id", "VARCHAR", "", nullable=False),
        member_id(),
        *GAP_MEASURE,
        Column("measurement_year", "INTEGER", "", nullable=False),
        coded("gap_status", v.GAP_STATUSES),
        Column("open_date", "DATE", "", nullable=False),
        Column("close_date", "DATE", "null while open"),
        Column("close_source", "VARCHAR", "how the gap closed"),
        Column("snapshot_date", "DATE", "delivery date of the list this row came from", nullable=False),
        *lineage(),
    ),
    primary_key=("gap_id",),
)

RX_FILLS = TableSpec(
    "silver.rx_fills",
    "Part D fills for the adherence drug classes, one row per fill.",
    (
        Column("fill_id", "VARCHAR", "", nullable=False),
        member_id(),
        coded("drug_class", v.DRUG_CLASSES),
        Column("fill_date", "DATE", "", nullable=False),
        Column("days_supply", "INTEGER", "", nullable=False),
        Column("delivery_date", "DATE", "delivery date of the extract this row came from", nullable=False),
        *lineage(),
    ),
    primary_key=("fill_id",),
)

# The key of the audit tables kept per silver table, provider and delivery day, and the stamp of the run that wrote a row.
PER_PROVIDER_DAY = (
    Column("silver_table", "VARCHAR", nullable=False),
    Column("provider", "VARCHAR", nullable=False),
    Column("partition_date", "DATE", nullable=False),
)
RUN_STAMP = (Column("run_id", "VARCHAR"), Column("recorded_at", "TIMESTAMP"))

SILVER_RECONCILIATION = TableSpec(
    "audit.silver_reconciliation",
    "Per silver event table, provider and day: rows delivered = loaded + quarantined + duplicates removed.",
    (
        *PER_PROVIDER_DAY,
        Column("rows_delivered", "BIGINT", nullable=False),
        Column("rows_loaded", "BIGINT", nullable=False),
        Column("rows_quarantined", "BIGINT", nullable=False),
        Column("duplicates_removed", "BIGINT", nullable=False),
        *RUN_STAMP,
    ),
    partition_column="partition_date",
)

SILVER_INPUTS = TableSpec(
    "audit.silver_inputs",
    "What each silver partition (or dimension, partition_date null) was last built from.",
    (
        Column("silver_table", "VARCHAR", nullable=False),
        Column("partition_date", "DATE", "delivery date; null for a whole table"),
        Column("fingerprint", "VARCHAR", "sha256 of the logic version, the crosswalk fingerprint and the files", nullable=False),
        Column("depends_on", "VARCHAR", "fingerprint of the member crosswalk the partition resolved members through"),
        Column("source_files", "VARCHAR[]", "<provider>/<file>:<content hash> of every bronze file read, sorted"),
        *RUN_STAMP,
    ),
)

CONTRACT_CHECKS = TableSpec(
    "audit.contract_checks",
    "The last contract-check outcome of each silver partition (or table, partition_date null) and the state of the rows "
    "it covered, so a re-run over unchanged rows reuses it and an append validates only the added rows (check_memo.py).",
    (
        Column("silver_table", "VARCHAR", nullable=False),
        Column("partition_date", "DATE", "delivery date; null for a whole table"),
        Column("row_count", "BIGINT", "rows the outcome covered", nullable=False),
        Column("written_until", "TIMESTAMP", "latest write time among those rows"),
        Column("state", "VARCHAR", "the covered rows' state (count, write time, recorded inputs) as text", nullable=False),
        Column("passed", "BOOLEAN", nullable=False),
        Column("metadata", "VARCHAR", "the outcome's metadata as JSON (counts and masked examples)"),
        Column("recorded_at", "TIMESTAMP", nullable=False),
    ),
)

SILVER_TABLES = (OUTREACH_EVENTS, APPOINTMENT_EVENTS, APPOINTMENTS, MEMBERS, MEMBER_IDENTIFIERS, CARE_GAPS, RX_FILLS)

SILVER_FLAGS = TableSpec(
    "audit.silver_flags",
    "Loaded silver rows that carry a caveat (a local time the autumn daylight-saving change repeats, read by the "
    "provider's documented rule), per table, provider and day.",
    (
        *PER_PROVIDER_DAY,
        Column("source_file", "VARCHAR", nullable=False),
        Column("source_row", "BIGINT", nullable=False),
        Column("flag", "VARCHAR", nullable=False),
        Column("detail", "VARCHAR"),
        *RUN_STAMP,
    ),
    partition_column="partition_date",
)
