"""Contract outlook: per contract, the predicted rating and P(4+ stars) week by week with its uncertainty,
the measure levers ranked by gain, and the CMS reward factor."""

import altair as alt
import streamlit as st

from stars_assets.dashboard import data, ui

st.title("Contract outlook")
predictions = ui.table("model", "contract_predictions")
levers = ui.table("model", "measure_levers")
if predictions is None:
    st.stop()
with st.sidebar:
    st.header("Filters")
    contract = st.selectbox("Contract", sorted(predictions["contract_id"].unique()), key="outlook_contract")
    model = st.radio(
        "Model",
        ["fitted", "seed"],
        key="outlook_model",
        format_func={"fitted": "fitted on CMS 2026", "seed": "seed calibration"}.get,
    )

path = data.trajectory(predictions, contract, model)
latest = path.iloc[-1]
cols = st.columns(4)
cols[0].metric("Expected rating", f"{latest['expected_stars']:.2f} stars")
cols[1].metric("P(4+ stars)", f"{latest['p_four_plus']:.1%}")
cols[2].metric("CMS projected summary", f"{latest['projected_summary']:g} stars")
cols[3].metric("Reward factor", f"+{latest['reward_factor']:g}")
st.caption(
    f"Week ending {latest['as_of_week_end']}; the band is the expected rating ± one standard deviation of the "
    "predicted rating distribution. The measurement-year 2026 activity is rated in the 2028 Star Ratings."
)

left, right = st.columns(2)
base = alt.Chart(path).encode(x=alt.X("as_of_week_end:T", title="week ending"))
with left:
    st.subheader("Expected rating")
    st.altair_chart(
        base.mark_area(opacity=0.25).encode(
            y=alt.Y("stars_low:Q", title="stars", scale=alt.Scale(domain=[1, 5])), y2="stars_high:Q"
        )
        + base.mark_line(point=True).encode(y="expected_stars:Q")
    )
with right:
    st.subheader("P(4+ stars)")
    st.altair_chart(
        base.mark_line(point=True).encode(
            y=alt.Y("p_four_plus:Q", title="P(4+ stars)", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]))
        )
    )
ui.show_table(path, f"outlook_{contract}_{model}")

st.subheader("Measure levers, ranked by gain")
if levers is not None:
    ranked = data.ranked_levers(levers, contract)
    ui.bars_and_table(
        ranked,
        f"levers_{contract}",
        x=alt.X("unrounded_gain:Q", title="rise of the weighted mean for one more measure star"),
        y=alt.Y("measure_id:N", sort=alt.SortField("lever_rank"), title="measure"),
        tooltip=["lever_rank", "measure_id", "measure_code", "rate", "threshold", "distance", "weight", "rounded_gain"],
    )
    st.caption("Ranked by the rounded summary's gain, then the gain per unit of distance to the next CMS cut point.")
ui.source("model/contract_predictions", "model/measure_levers")
