"""The gold fact tables, each defined once (see lib/tables.py for what is derived from them)."""

from __future__ import annotations

from stars_assets.lib import vocabulary as v
from stars_assets.lib.silver.tables import GAP_MEASURE
from stars_assets.lib.tables import Column, TableSpec, coded, member_id

# Gap closure is measured within these many days of the first touch.
CLOSURE_WINDOWS_DAYS = (30, 60, 90)

AS_OF = Column("as_of_week_end", "DATE", "the Saturday the snapshot is as of", nullable=False)

CARE_GAP_CLOSURE = TableSpec(
    "gold.care_gap_closure",
    "One row per member care gap of the measurement year, as of the week end.",
    (
        AS_OF,
        Column("gap_id", "VARCHAR", "", nullable=False),
        member_id(),
        Column("contract_id", "VARCHAR", "the member's contract", nullable=False),
        Column("region", "VARCHAR", "the member's region"),
        *GAP_MEASURE,
        Column("measurement_year", "INTEGER", ""),
        Column("open_date", "DATE", "", nullable=False),
        Column("close_date", "DATE", "closure known by the week end"),
        Column("close_source", "VARCHAR", "how the gap closed"),
        Column("is_closed", "BOOLEAN", "closed by the week end"),
        Column("days_to_close", "INTEGER", "days from opening to closure"),
        Column("touches_total", "BIGINT", "outreach touches between opening and closure (or the week end)", nullable=False),
        *[Column(f"touches_{c.lower()}", "BIGINT", f"touches by {c}") for c in v.CHANNELS],
        Column(
            "reaching_touches",
            "BIGINT",
            "touches that reached the member (" + ", ".join(v.REACHING_EVENT_TYPES) + ")",
            nullable=False,
        ),
        Column("appointments_booked", "BIGINT", "appointments for the gap's measure booked while it was open", nullable=False),
        Column("appointments_completed", "BIGINT", "of those, completed"),
        Column("first_touch_ts", "TIMESTAMP", "first touch (UTC)"),
        Column(
            "attributed_channel", "VARCHAR", "channel of the last reaching touch within the attribution window before closure"
        ),
    ),
    partition_column="as_of_week_end",
    primary_key=("as_of_week_end", "gap_id"),
)

CAMPAIGN_EFFECTIVENESS = TableSpec(
    "gold.campaign_effectiveness",
    "Campaign effectiveness as of the week end, by channel x region x contract x cohort x measure.",
    (
        AS_OF,
        coded("channel", v.CHANNELS),
        Column("region", "VARCHAR", ""),
        Column("contract_id", "VARCHAR", ""),
        Column("dual_lis_cohort", "VARCHAR", "DUAL, LIS or NEITHER"),
        Column("age_band", "VARCHAR", "under 65, 65-74, 75-84, 85+"),
        Column("measure_code", "VARCHAR", ""),
        Column("members_targeted", "BIGINT", "members touched", nullable=False),
        Column("gaps_targeted", "BIGINT", "gaps touched"),
        Column("attempts", "BIGINT", "touches", nullable=False),
        Column("members_reached", "BIGINT", "", nullable=False),
        Column("reach_rate", "DOUBLE", "members reached / targeted", nullable=False),
        Column("appointments_kept", "BIGINT", ""),
        Column("appointments_missed", "BIGINT", ""),
        Column("appointment_show_rate", "DOUBLE", "kept / (kept + missed)"),
        *[
            column
            for n in CLOSURE_WINDOWS_DAYS
            for column in (
                Column(f"gaps_mature_{n}d", "BIGINT", f"gaps first touched at least {n} days before the week end"),
                Column(f"closed_within_{n}d", "BIGINT", f"of those, closed within {n} days of the first touch"),
                Column(f"closure_rate_{n}d", "DOUBLE", f"closed within {n} days / mature"),
            )
        ],
        Column("members_opted_out", "BIGINT", "", nullable=False),
        Column(
            "chronic_condition",
            "VARCHAR",
            "the member's chronic conditions as one cohort label (DIABETES+HYPERTENSION, ... or NONE)",
            nullable=False,
        ),
        Column("members_engaged", "BIGINT", "members who acted (" + ", ".join(v.ENGAGING_EVENT_TYPES) + ")", nullable=False),
        Column("appointments_booked", "BIGINT", "appointments booked after a touch by the week end", nullable=False),
        Column("gaps_closed", "BIGINT", "touched gaps closed by the week end", nullable=False),
    ),
    partition_column="as_of_week_end",
    primary_key=(
        "as_of_week_end",
        "channel",
        "region",
        "contract_id",
        "dual_lis_cohort",
        "age_band",
        "chronic_condition",
        "measure_code",
    ),
)

GOLD_TABLES = {spec.name: spec for spec in (CARE_GAP_CLOSURE, CAMPAIGN_EFFECTIVENESS)}
