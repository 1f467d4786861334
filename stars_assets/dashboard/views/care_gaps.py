"""Care-gap closure: open and closed gaps by contract and measure over the measurement year, closure curves,
and closures by the channel credited with them."""

import altair as alt
import streamlit as st

from stars_assets.dashboard import data, ui

ALL = "(all)"

st.title("Care-gap closure")
frame = ui.table("gold", "care_gap_closure", data.CLOSURE_COLUMNS)
if frame is None:
    st.stop()
weeks = data.weeks(frame)
with st.sidebar:
    st.header("Filters")
    week = st.selectbox("Snapshot week ending", weeks, key="gaps_week")
    contract = st.selectbox("Contract", [ALL, *sorted(frame["contract_id"].unique())], key="gaps_contract")
    measure = st.selectbox("Measure", [ALL, *sorted(frame["measure_code"].unique())], key="gaps_measure")
filters = data.GapFilters(week, None if contract == ALL else contract, None if measure == ALL else measure)

by_cell = data.gaps_by_contract_measure(frame, filters)
st.subheader(f"Open and closed gaps by contract and measure, week ending {week}")
stacked = by_cell.melt(
    id_vars=["contract_id", "measure_code"], value_vars=["closed", "open"], var_name="status", value_name="count"
)
st.altair_chart(
    ui.bar_chart(
        stacked,
        x=alt.X("measure_code:N", title="measure"),
        y=alt.Y("count:Q", title="gaps"),
        color=alt.Color("status:N", scale=alt.Scale(domain=["closed", "open"])),
        column=alt.Column("contract_id:N", title="contract"),
        tooltip=["contract_id", "measure_code", "status", "count"],
    )
)
ui.show_table(by_cell, "care_gaps_by_contract_measure")

left, right = st.columns(2)
with left:
    over_year = data.gaps_over_year(frame, filters)
    st.subheader("Over the measurement year")
    st.altair_chart(
        alt.Chart(over_year.melt(id_vars="as_of_week_end", value_vars=["open", "closed"], var_name="status", value_name="count"))
        .mark_line(point=True)
        .encode(x=alt.X("as_of_week_end:T", title="week ending"), y=alt.Y("count:Q", title="gaps"), color="status:N")
    )
    ui.download(over_year, "care_gaps_over_year")
with right:
    channels = data.closures_by_channel(frame, filters)
    st.subheader("Closures by attributed channel")
    ui.bars_and_table(
        channels,
        "closures_by_channel",
        x=alt.X("attributed_channel:N", sort="-y", title="channel credited (last reaching touch within 90 days)"),
        y=alt.Y("closures:Q"),
        tooltip=["attributed_channel", "closures"],
    )

curves = data.closure_curves(frame, filters)
st.subheader("Closure curves: share of gaps closed within N days of opening")
st.altair_chart(
    alt.Chart(curves)
    .mark_line()
    .encode(
        x=alt.X("days_since_open:Q", title="days since the gap opened"),
        y=alt.Y("share_closed:Q", title="share closed", axis=alt.Axis(format="%")),
        color=alt.Color("measure_code:N", title="measure"),
    )
)
ui.download(curves, "closure_curves")
ui.source("gold/care_gap_closure")
