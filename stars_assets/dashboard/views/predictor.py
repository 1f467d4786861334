"""The seed's interactive predictor: four sliders, the rating distribution, expected rating, P(4+), the two
inputs that move the needle, seed or fitted calibration, and CMS's reward factor rule as a toggle.
Same functions as `stars-predict`."""

import altair as alt
import pandas as pd
import streamlit as st

from stars_assets.dashboard import data, ui
from stars_assets.lib.ordinal import INPUTS, INPUTS_BY_NAME

DEFAULTS = {"hedis": 72.0, "cahps": 3.6, "adherence": 86.0, "readmission": 14.0}  # the `stars-predict` example
SLIDER_STEP = {"pp": 0.5, "stars": 0.05}

st.title("Predictor")
st.caption("The seed's interactive Star Rating predictor, with the same functions as `stars-predict`.")
with st.sidebar:
    st.header("Inputs")
    inputs = {
        spec.name: float(
            st.slider(
                f"{spec.label} ({spec.unit})",
                spec.low,
                spec.high,
                DEFAULTS[spec.name],
                SLIDER_STEP[spec.unit],
                key=f"predictor_{spec.name}",
            )
        )
        for spec in INPUTS
    }
    model = st.radio(
        "Calibration",
        ["seed", "fitted"],
        key="predictor_model",
        format_func={"seed": "seed (reference calibration)", "fitted": "fitted on CMS 2026"}.get,
    )
    apply_reward = st.toggle("Apply CMS's reward factor rule", key="predictor_reward")
    variance = st.slider(
        "Weighted variance of measure stars",
        0.0,
        2.0,
        0.8,
        0.05,
        key="predictor_variance",
        disabled=not apply_reward,
        help="CMS 2026 thresholds: low < 0.91, medium < 1.26",
    )

params, source = data.parameter_set(model)
report = data.predictor_report(params, inputs)
probabilities = pd.DataFrame({"stars": list(report["probabilities"]), "probability": list(report["probabilities"].values())})

cols = st.columns(3)
cols[0].metric("Expected rating", f"{report['expected_stars']:.2f} stars")
cols[1].metric("P(4+ stars)", f"{report['p_four_plus']:.1%}")
if apply_reward:
    factor, rated = data.with_reward_factor(report["expected_stars"], variance)
    cols[2].metric("With CMS reward factor", f"{rated:.2f} stars", f"+{factor:g}")
st.caption(f"Model: {report['model']} ({source}).")

st.subheader("Probability of each star level")
st.altair_chart(
    ui.bar_chart(
        probabilities,
        x=alt.X("stars:N", sort=None, title="stars"),
        y=alt.Y("probability:Q", axis=alt.Axis(format="%")),
        tooltip=["stars", alt.Tooltip("probability:Q", format=".1%")],
    )
)
st.dataframe(probabilities, hide_index=True, key="probabilities_table")

st.subheader("Seed vs fitted calibration")
both = {name: data.predictor_report(data.parameter_set(name)[0], inputs) for name in ("seed", "fitted")}
comparison = pd.DataFrame(
    [
        {
            "model": name,
            "expected_stars": r["expected_stars"],
            "p_four_plus": r["p_four_plus"],
            "top_lever": r["levers"][0]["input"],
        }
        for name, r in both.items()
    ]
)
st.dataframe(comparison, hide_index=True, key="comparison_table")

st.subheader("What would move the needle")
levers = pd.DataFrame(report["levers"])
levers.insert(1, "label", [INPUTS_BY_NAME[name].label for name in levers["input"]])
for rank, lever in enumerate(report["levers"], start=1):
    spec = INPUTS_BY_NAME[lever["input"]]
    capped = f" (capped to {lever['applied_step']:+g} by the valid range)" if lever["capped"] else ""
    st.markdown(f"{rank}. **{spec.label}** {spec.describe_step()}{capped}: {lever['gain']:+.3f} stars")
st.dataframe(levers, hide_index=True, key="levers_table")
ui.download(
    probabilities.assign(
        model=report["model"], expected_stars=report["expected_stars"], p_four_plus=report["p_four_plus"], **inputs
    ),
    "prediction",
)
st.caption(
    'The seed says a reward factor is "+0.4 for three years at 4+"; CMS\'s rule adds 0.1 to 0.4 for a '
    "relatively high or high weighted mean with low or medium variance (2026 thresholds). The toggle applies "
    "CMS's rule, taking the expected rating as the weighted mean of measure stars."
)
