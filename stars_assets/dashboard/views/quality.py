"""Data quality: quarantined rows by provider, day and reason; asset-check outcomes over time; delivery freshness."""

import altair as alt
import streamlit as st

from stars_assets.dashboard import data, ui

ALL = "(all)"

st.title("Data quality")

quarantine = ui.section("Quarantined rows by delivery day and reason", "quality", "quarantine_summary")
if quarantine is not None:
    provider = st.selectbox("Provider", [ALL, *sorted(quarantine["provider"].unique())], key="quality_provider")
    by_day = data.quarantine_by_day(quarantine, None if provider == ALL else provider)
    ui.bars_and_table(
        by_day,
        "quarantine_by_day",
        x=alt.X("yearmonthdate(delivery_date):O", title="delivery day"),
        y=alt.Y("sum(rows):Q", title="rows quarantined"),
        color="reason:N",
        tooltip=["delivery_date", "provider", "reason", "rows"],
    )

outcomes = ui.section("Asset-check outcomes over time", "quality", "check_outcomes")
if outcomes is not None:
    ui.bars_and_table(
        data.check_outcomes_by_day(outcomes),
        "check_outcomes_by_day",
        x=alt.X("yearmonthdate(day):O", title="evaluated on"),
        y=alt.Y("evaluations:Q"),
        color="outcome:N",
        tooltip=["day", "outcome", "evaluations"],
    )
    failing = data.failed_checks(outcomes)
    st.caption(f"{len(failing)} check(s) failing at their latest evaluation.")
    st.dataframe(failing, hide_index=True, key="failing_table")

deliveries = ui.section("Delivery freshness per vendor", "quality", "delivery_freshness")
if deliveries is not None:
    ui.bars_and_table(
        data.freshness(deliveries),
        "delivery_freshness",
        target="sla_hours:Q",
        x=alt.X("provider:N"),
        y=alt.Y("hours_since:Q", title="hours since the newest file"),
        color=alt.Color("is_fresh:N", title="within SLA"),
        tooltip=["provider", "hours_since", "sla_hours", "is_fresh"],
    )
ui.source("quality/quarantine_summary", "quality/check_outcomes", "quality/delivery_freshness")
