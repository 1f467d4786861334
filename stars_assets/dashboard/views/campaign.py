"""Campaign effectiveness: a metric by week for channel, then region, cohort and measure.

The filters and the drill path live in the URL's query parameters (CampaignView), so a view is a
link. Selecting a bar drills one step down; a breadcrumb button goes back up.
"""

import altair as alt
import streamlit as st

from stars_assets.dashboard import data, ui
from stars_assets.dashboard.data import COHORTS, DRILL_LABELS, DRILL_PATH, METRICS, CampaignView

ALL = "(all)"
KEYS = {
    "week": "campaign_week",
    "metric": "campaign_metric",
    "cohort_dimension": "campaign_cohort_dimension",
    **{step: f"campaign_{step}" for step in DRILL_PATH},
}

st.title("Campaign effectiveness")
frame = ui.table("gold", "campaign_effectiveness")
if frame is None:
    st.stop()
view = CampaignView.from_params(st.query_params.to_dict())
weeks = data.weeks(frame)


def show(new_view: CampaignView) -> None:
    st.query_params.from_dict(new_view.to_params())


def from_widgets() -> None:
    """Widget callback: the URL follows the sidebar."""
    state = st.session_state
    picked = {step: (None if state[KEYS[step]] == ALL else state[KEYS[step]]) for step in DRILL_PATH}
    cohort_changed = state[KEYS["cohort_dimension"]] != view.cohort
    show(
        CampaignView(
            week=state[KEYS["week"]],
            channel=picked["channel"],
            region=picked["region"],
            cohort=state[KEYS["cohort_dimension"]],
            cohort_value=None if cohort_changed else picked["cohort"],
            measure=picked["measure"],
            metric=state[KEYS["metric"]],
        )
    )


# The sidebar shows what the URL says: widget state is set from the view before the widgets are drawn.
with st.sidebar:
    st.header("Filters")
    st.session_state[KEYS["week"]] = view.week if view.week in weeks else weeks[0]
    st.selectbox("Week ending", weeks, key=KEYS["week"], on_change=from_widgets)
    st.session_state[KEYS["metric"]] = view.metric
    st.selectbox("Metric", list(METRICS), format_func=lambda key: METRICS[key][0], key=KEYS["metric"], on_change=from_widgets)
    st.session_state[KEYS["cohort_dimension"]] = view.cohort
    st.selectbox(
        "Cohort", list(COHORTS), format_func=lambda key: COHORTS[key][1], key=KEYS["cohort_dimension"], on_change=from_widgets
    )
    for step in DRILL_PATH:
        options = [ALL, *data.drill_options(frame, view, step)]
        st.session_state[KEYS[step]] = view.value(step) if view.value(step) in options else ALL
        label = COHORTS[view.cohort][1] if step == "cohort" else DRILL_LABELS[step]
        st.selectbox(label, options, key=KEYS[step], on_change=from_widgets)

metric_label = METRICS[view.metric][0]
level_label = COHORTS[view.cohort][1] if view.level == "cohort" else DRILL_LABELS[view.level]

# Breadcrumb: each filtered step is a button back up to it.
crumbs = st.columns(len(DRILL_PATH) + 1)
if crumbs[0].button("All channels", key="up_channel"):
    show(view.up_to("channel"))
    st.rerun()
for column, step in zip(crumbs[1:], DRILL_PATH):
    if view.value(step) is not None and step != DRILL_PATH[-1]:
        below = DRILL_PATH[DRILL_PATH.index(step) + 1]
        if column.button(f"› {view.value(step)}", key=f"up_{below}"):
            show(view.up_to(below))
            st.rerun()

week_table = data.campaign_for_week(frame, view)
weekly = data.campaign_by_week(frame, view)
shown_week = view.week if view.week in weeks else weeks[0]
st.subheader(f"{metric_label} by {level_label.lower()}, week ending {shown_week}")
st.caption("Select a bar to drill down: channel › region › cohort › measure. The URL keeps the view.")

selection = alt.selection_point(name="drill", fields=[view.level])
bars = ui.bar_chart(
    week_table,
    x=alt.X(f"{view.level}:N", title=level_label, sort=None),
    y=alt.Y(f"{view.metric}:Q", title=metric_label),
    tooltip=[view.level, alt.Tooltip(f"{view.metric}:Q", format=",.3~f")],
    opacity=alt.condition(selection, alt.value(1.0), alt.value(0.5)),
).add_params(selection)
# One chart (and so one selection) per view: a selection made in one view must not carry into another, or going
# back up by a breadcrumb would drill straight down again.
chart_key = "campaign_bars_" + "_".join(view.to_params().values())
event = st.altair_chart(bars, on_select="rerun", key=chart_key)
picked = [point.get(view.level) for point in (event.selection.get("drill") or []) if point.get(view.level)] if event else []
if picked and view.level != DRILL_PATH[-1]:
    show(view.drill(picked[0]))
    st.rerun()

st.subheader(f"{metric_label} week by week")
lines = (
    alt.Chart(weekly)
    .mark_line(point=True)
    .encode(
        x=alt.X("as_of_week_end:T", title="week ending"),
        y=alt.Y(f"{view.metric}:Q", title=metric_label),
        color=alt.Color(f"{view.level}:N", title=level_label),
    )
)
st.altair_chart(lines)

st.subheader("Figures")
columns = [view.level, *METRICS]
st.dataframe(week_table[columns], hide_index=True, key="campaign_table")
ui.download(weekly[["as_of_week_end", *columns, *data.SUM_COLUMNS]], "campaign_effectiveness")
ui.source("gold/campaign_effectiveness")
st.caption(
    "Member counts are summed over the measure cells a member's gaps fall in; closure rates count the gaps "
    "whose first touch by the channel is at least 30/60/90 days before the week end."
)
