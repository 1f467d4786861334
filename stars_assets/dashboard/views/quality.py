"""Data quality: quarantined rows by provider, day and reason; asset-check outcomes over time; delivery freshness."""

import altair as alt
import streamlit as st

from stars_assets.dashboard import data, ui

ALL = "(all)"

st.title("Data quality")

st.subheader("Quarantined rows by delivery day and reason")
quarantine = ui.table("quality", "quarantine_summary")
if quarantine is not None:
    provider = st.selectbox("Provider", [ALL, *sorted(quarantine["provider"].unique())], key="quality_provider")
    by_day = data.quarantine_by_day(quarantine, None if provider == ALL else provider)
    st.altair_chart(
        ui.bar_chart(
            by_day,
            x=alt.X("yearmonthdate(delivery_date):O", title="delivery day"),
            y=alt.Y("sum(rows):Q", title="rows quarantined"),
            color="reason:N",
            tooltip=["delivery_date", "provider", "reason", "rows"],
        )
    )
    ui.show_table(by_day, "quarantine_table", "quarantine_by_day")

st.subheader("Asset-check outcomes over time")
outcomes = ui.table("quality", "check_outcomes")
if outcomes is not None:
    by_day = data.check_outcomes_by_day(outcomes)
    st.altair_chart(
        ui.bar_chart(
            by_day,
            x=alt.X("yearmonthdate(day):O", title="evaluated on"),
            y=alt.Y("evaluations:Q"),
            color="outcome:N",
            tooltip=["day", "outcome", "evaluations"],
        )
    )
    ui.show_table(by_day, "outcomes_table", "check_outcomes_by_day")
    failing = data.failed_checks(outcomes)
    st.caption(f"{len(failing)} check(s) failing at their latest evaluation.")
    st.dataframe(failing, hide_index=True, key="failing_table")

st.subheader("Delivery freshness per vendor")
deliveries = ui.table("quality", "delivery_freshness")
if deliveries is not None:
    fresh = data.freshness(deliveries)
    st.altair_chart(
        ui.bar_chart(
            fresh,
            x=alt.X("provider:N"),
            y=alt.Y("hours_since:Q", title="hours since the newest file"),
            color=alt.Color("is_fresh:N", title="within SLA"),
            tooltip=["provider", "hours_since", "sla_hours", "is_fresh"],
        )
        + alt.Chart(fresh).mark_tick(color="red", thickness=2, size=30).encode(x="provider:N", y="sla_hours:Q")
    )
    ui.show_table(fresh, "freshness_table", "delivery_freshness")
ui.source("quality/quarantine_summary", "quality/check_outcomes", "quality/delivery_freshness")
