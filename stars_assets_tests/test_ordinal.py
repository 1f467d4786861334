"""The Star Rating ordinal model: the seed's formulas, levers, parameter recovery, features, the real 2026 fit."""

import math

import numpy as np
import pandas as pd
import pytest

from stars_assets import settings
from stars_assets.lib.cms import tables
from stars_assets.lib.ordinal import (
    INPUT_NAMES,
    SEED,
    InputError,
    OrdinalParams,
    composite_inputs,
    contract_inputs_from_measure_rates,
    cross_validate,
    fit,
    levers,
    merge_sparse_levels,
    parameter_table,
    predict,
    predict_contracts,
    quality,
    round_to_half_star,
    simulate,
    training_set,
)

# STARS.md section 1, written out again so the test does not share code with the library.
ALPHA = {2: -10.1, 3: -11.76, 4: -15.1, 5: -18.17}
BETA = {"hedis": 0.08, "cahps": 1.50, "adherence": 0.06, "readmission": -0.08}


def seed_by_hand(x: dict) -> tuple[dict[int, float], float]:
    linear = sum(BETA[name] * x[name] for name in BETA)
    at_least = {1: 1.0, **{k: 1 / (1 + math.exp(-(ALPHA[k] + linear))) for k in ALPHA}, 6: 0.0}
    probabilities = {k: at_least[k] - at_least[k + 1] for k in range(1, 6)}
    return probabilities, sum(k * p for k, p in probabilities.items())


def inputs(**values) -> dict:
    return {"hedis": 72.0, "cahps": 3.6, "adherence": 86.0, "readmission": 14.0} | values


# --- the seed's calibration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "x",
    [inputs(), inputs(hedis=40, cahps=1.2), inputs(hedis=95, cahps=4.8, adherence=95, readmission=6), inputs(cahps=2.5)],
)
def test_seed_reproduces_the_stars_md_formulas(x):
    expected_probabilities, expected_stars = seed_by_hand(x)
    prediction = predict(SEED, x)
    probabilities = prediction.probabilities.iloc[0]
    assert probabilities.sum() == pytest.approx(1.0)
    assert (probabilities >= 0).all()
    assert list(probabilities.index) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert probabilities.to_numpy() == pytest.approx([expected_probabilities[k] for k in range(1, 6)], abs=1e-12)
    assert prediction.expected_stars.iloc[0] == pytest.approx(expected_stars, abs=1e-12)
    assert prediction.p_four_plus.iloc[0] == pytest.approx(expected_probabilities[4] + expected_probabilities[5])


def test_seed_cuts_are_minus_alpha_in_statsmodels_convention():
    assert SEED.cuts == (10.1, 11.76, 15.1, 18.17)
    assert dict(SEED.betas) == BETA


def test_predict_is_vectorized_over_a_frame():
    frame = pd.DataFrame([inputs(), inputs(hedis=90)], index=pd.Index(["H0001", "H0002"], name="contract_id"))
    prediction = predict(SEED, frame)
    assert list(prediction.expected_stars.index) == ["H0001", "H0002"]
    assert prediction.expected_stars["H0002"] > prediction.expected_stars["H0001"]
    assert prediction.expected_stars["H0001"] == pytest.approx(seed_by_hand(inputs())[1])


def hedis_gain(**x) -> float:
    gains = levers(SEED, inputs(**x), top=None)
    return gains.loc[gains["input"] == "hedis", "gain"].item()


def hedis_gain_centred_at(linear: float) -> float:
    """HEDIS lever gain when its +5 pp step (+0.4 on x.beta) is centred on x.beta = linear."""
    # cahps 4, adherence 80, readmission 10: x.beta = 0.08 hedis + 10
    return hedis_gain(hedis=(linear - 0.2 - 10) / 0.08, cahps=4.0, adherence=80.0, readmission=10.0)


def test_lever_gain_is_largest_near_a_cut_point_and_smallest_in_the_tails():
    on_a_cut = hedis_gain_centred_at(15.1)
    between_cuts = hedis_gain_centred_at((11.76 + 15.1) / 2)
    low_tail = hedis_gain(hedis=0.0, cahps=1.0, adherence=80.0, readmission=10.0)  # x.beta = 5.5
    high_tail = hedis_gain(hedis=100.0, cahps=5.0, adherence=100.0, readmission=0.0)  # x.beta = 21.5
    assert on_a_cut > between_cuts > max(low_tail, high_tail)
    assert max(low_tail, high_tail) < 0.15 * on_a_cut
    # Sweeping x.beta from 7 to 14.6 (cahps 2): the largest gain sits among the cut points, not in a tail.
    sweep = {h: hedis_gain(hedis=h, cahps=2.0, adherence=80.0, readmission=10.0) for h in range(0, 96)}
    best_linear = 0.08 * (max(sweep, key=sweep.get) + 2.5) + 7
    assert SEED.cuts[0] - 0.2 <= best_linear <= SEED.cuts[1] + 0.2


def test_a_step_that_would_pass_100_percent_is_capped():
    gains = levers(SEED, inputs(hedis=98.0, adherence=99.0, readmission=1.0, cahps=4.9), top=None).set_index("input")
    assert gains.loc["hedis", "applied_step"] == pytest.approx(2.0)
    assert gains.loc["adherence", "applied_step"] == pytest.approx(1.0)
    assert gains.loc["readmission", "applied_step"] == pytest.approx(-1.0)
    assert gains.loc["cahps", "applied_step"] == pytest.approx(0.1)
    assert gains["capped"].all()
    capped_gain = (
        seed_by_hand(inputs(hedis=100.0, adherence=99.0, readmission=1.0, cahps=4.9))[1]
        - seed_by_hand(inputs(hedis=98.0, adherence=99.0, readmission=1.0, cahps=4.9))[1]
    )
    assert gains.loc["hedis", "gain"] == pytest.approx(capped_gain)
    at_the_top = levers(SEED, inputs(hedis=100.0), top=None).set_index("input")
    assert at_the_top.loc["hedis", "gain"] == 0.0


def test_levers_returns_the_top_two_best_first_with_their_gains():
    x = inputs()
    top = levers(SEED, x)
    assert list(top["rank"]) == [1, 2]
    assert top["gain"].is_monotonic_decreasing
    all_gains = levers(SEED, x, top=None)
    assert len(all_gains) == 4
    assert set(top["input"]) == set(all_gains.nlargest(2, "gain")["input"])
    _, base = seed_by_hand(x)
    assert top["gain"].iloc[0] == pytest.approx(seed_by_hand(x | {"cahps": 3.9})[1] - base)  # CAHPS: beta*step = 0.45


@pytest.mark.parametrize(
    "bad, message",
    [
        (inputs(hedis=140), "hedis = 140 is outside"),
        (inputs(cahps=0.5), "cahps = 0.5 is outside"),
        (inputs(readmission=-1), "readmission = -1 is outside"),
        (inputs(adherence=float("nan")), "adherence"),
        ({"hedis": 70, "cahps": 3, "adherence": 85}, "missing input(s): readmission"),
    ],
)
def test_invalid_inputs_are_refused(bad, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        predict(SEED, bad)


def test_params_refuse_inconsistent_definitions():
    with pytest.raises(ValueError):
        OrdinalParams("bad", levels=(1, 2, 3), cuts=(1.0,), betas=dict(BETA))
    with pytest.raises(ValueError):
        OrdinalParams("bad", levels=(1, 2, 3), cuts=(2.0, 1.0), betas=dict(BETA))
    with pytest.raises(ValueError):
        OrdinalParams("bad", levels=(1, 2, 3), cuts=(1.0, 2.0), betas={"hedis": 1.0})


def test_round_to_half_star_rounds_a_quarter_up():
    assert list(round_to_half_star(pd.Series([3.75, 3.7499, 3.25, 3.2499]))) == [4.0, 3.5, 3.5, 3.0]


# --- fitting ---------------------------------------------------------------------------------------


def simulated_frame(params: OrdinalParams, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "hedis": rng.uniform(40, 100, n),
            "cahps": rng.uniform(1, 5, n),
            "adherence": rng.uniform(60, 100, n),
            "readmission": rng.uniform(4, 25, n),
        }
    )
    return frame.assign(label=simulate(params, frame, seed=seed + 1))


def test_parameter_recovery_from_simulated_data():
    truth = SEED
    result = fit(simulated_frame(truth, n=4000, seed=11))
    assert result.converged
    estimates = result.estimates.set_index("name")
    for name, value in truth.betas.items():
        assert estimates.loc[name, "estimate"] == pytest.approx(value, rel=0.15)
        assert estimates.loc[name, "ci_low"] <= value <= estimates.loc[name, "ci_high"]
    assert np.asarray(result.params.cuts) == pytest.approx(np.asarray(truth.cuts), rel=0.08)
    assert result.params.levels == truth.levels
    assert 0 < result.pseudo_r2 < 1


def test_fitted_params_round_trip_through_the_stored_parameter_table():
    frame = simulated_frame(SEED, n=1500, seed=3)
    result = fit(frame)
    table = parameter_table(result, cross_validate(frame))
    restored = OrdinalParams.from_parameter_table(table)
    assert restored.levels == result.params.levels
    assert restored.cuts == pytest.approx(result.params.cuts)
    assert dict(restored.betas) == pytest.approx(dict(result.params.betas))
    cuts = table[table["kind"] == "cut"].set_index("upper_level")
    assert cuts.loc[4.0, "seed_value"] == 15.1  # the seed's threshold for reaching 4 stars
    assert quality.statistics(table)["n_obs"] == 1500


# --- features ------------------------------------------------------------------------------------


def measure_rows(contract_id: str, rates: dict[str, float] | None = None, stars: dict[str, int] | None = None) -> list[dict]:
    rates, stars = rates or {}, stars or {}
    return [{"contract_id": contract_id, "measure_id": m, "rate": r, "stars": None} for m, r in rates.items()] + [
        {"contract_id": contract_id, "measure_id": m, "rate": None, "stars": s} for m, s in stars.items()
    ]


FULL_CONTRACT = {
    "rates": {"C01": 70, "C02": 60, "C11": 80, "C12": 90, "C14": 75, "C20": 65, "D08": 85, "D09": 88, "D10": 91, "C18": 11},
    "stars": {"C22": 3, "C23": 4, "C24": 3, "C25": 4, "C26": 5, "C27": 3, "D05": 2, "D06": 4, "C03": 1},
}


def test_composite_inputs_follow_the_documented_definitions():
    thin = {  # 2 of 6 HEDIS rates, 3 of 8 CAHPS stars, 1 of 3 adherence rates, no C18
        "rates": {"C01": 70, "C02": 60, "D08": 85},
        "stars": {"C22": 3, "C23": 4, "C24": 3},
    }
    partial = {
        "rates": {"C01": 70, "C11": 80, "C20": 65, "D08": 85, "D10": 90, "C18": 9},
        "stars": {"C22": 3, "C23": 4, "D05": 2, "D06": 5},
    }
    rows = measure_rows("H0001", **FULL_CONTRACT) + measure_rows("H0002", **thin) + measure_rows("H0003", **partial)
    result = composite_inputs(pd.DataFrame(rows))
    full = result.loc["H0001"]
    assert full["hedis"] == pytest.approx(np.mean([70, 60, 80, 90, 75, 65]))
    assert full["cahps"] == pytest.approx(np.mean([3, 4, 3, 4, 5, 3, 2, 4]))  # C03 (flu vaccine) is not member experience
    assert full["adherence"] == pytest.approx(np.mean([85, 88, 91]))
    assert full["readmission"] == 11
    assert full["missing_inputs"] == ""
    assert result.loc["H0002", "missing_inputs"] == "hedis,cahps,adherence,readmission"
    assert result.loc["H0002", ["n_hedis_measures", "n_cahps_measures", "n_adherence_measures"]].tolist() == [2, 3, 1]
    third = result.loc["H0003"]  # exactly half of each composite's measures is enough
    assert (third["hedis"], third["cahps"], third["adherence"]) == (pytest.approx(215 / 3), 3.5, 87.5)
    assert third["missing_inputs"] == ""


def test_contract_inputs_from_measure_rates_uses_projected_stars_for_cahps():
    rows = (
        [{"contract_id": "H9001", "measure_id": m, "rate": r, "projected_stars": 3} for m, r in FULL_CONTRACT["rates"].items()]
        + [
            {"contract_id": "H9001", "measure_id": m, "rate": 88.0, "projected_stars": s}
            for m, s in FULL_CONTRACT["stars"].items()
        ]
        + [{"contract_id": "H9002", "measure_id": "C01", "rate": 70.0, "projected_stars": None}]
    )
    result = contract_inputs_from_measure_rates(pd.DataFrame(rows))
    expected = composite_inputs(pd.DataFrame(measure_rows("H9001", **FULL_CONTRACT)))
    assert result.loc["H9001", list(INPUT_NAMES)].tolist() == pytest.approx(expected.loc["H9001", list(INPUT_NAMES)].tolist())
    assert result.loc["H9002", "missing_inputs"] == "hedis,cahps,adherence,readmission"

    predictions = predict_contracts(SEED, result)
    assert list(predictions.index) == ["H9001", "H9002"]
    h9001 = predictions.loc["H9001"]
    assert h9001[["p_stars_1", "p_stars_2", "p_stars_3", "p_stars_4", "p_stars_5"]].sum() == pytest.approx(1.0)
    expected_prediction = predict(SEED, result.loc[["H9001"]])
    assert h9001["expected_stars"] == pytest.approx(expected_prediction.expected_stars.iloc[0])
    assert h9001["p_four_plus"] == pytest.approx(expected_prediction.p_four_plus.iloc[0])
    top = levers(SEED, result.loc[["H9001"]])
    assert [h9001["lever_1"], h9001["lever_2"]] == list(top["input"])
    assert h9001["lever_1_gain"] == pytest.approx(top["gain"].iloc[0])
    assert predictions.loc["H9002", ["expected_stars", "p_four_plus", "lever_1"]].isna().all()
    assert predictions.loc["H9002", "missing_inputs"] == "hedis,cahps,adherence,readmission"


@pytest.mark.parametrize(
    "counts, merged",
    [
        ({2.0: 2, 2.5: 21, 3.0: 111, 3.5: 175, 4.0: 116, 4.5: 73, 5.0: 18}, {2.0: 2.5}),
        ({1.5: 1, 2.0: 3, 2.5: 30, 3.0: 50, 5.0: 4}, {1.5: 2.5, 2.0: 2.5, 5.0: 3.0}),
        ({3.0: 50, 4.0: 50}, {}),
    ],
)
def test_sparse_extreme_ratings_merge_into_their_inner_neighbour(counts, merged):
    ratings = pd.Series([rating for rating, n in counts.items() for _ in range(n)])
    level_of = merge_sparse_levels(ratings)
    assert {rating: level for rating, level in level_of.items() if rating != level} == merged


# --- the real CMS 2026 tables --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cms_2026():
    year_dir = settings.cms_reference_dir(2026)
    return training_set(tables.measure_scores(year_dir), tables.measure_stars(year_dir), tables.summary_ratings(year_dir))


def test_training_set_from_the_2026_tables(cms_2026):
    frame = cms_2026.frame
    assert len(frame) + len(cms_2026.dropped) == 516  # every MA-PD contract with a published overall rating
    assert len(frame) == 444 and frame["contract_id"].is_unique
    assert cms_2026.dropped_per_input() == {"hedis": 2, "cahps": 31, "adherence": 0, "readmission": 47}
    assert not frame[list(INPUT_NAMES) + ["label"]].isna().any().any()
    for spec in SEED.inputs:
        assert frame[spec.name].between(spec.low, spec.high).all()
    assert frame["cahps"].between(1, 5).all() and frame["hedis"].between(50, 95).all()
    assert frame["adherence"].between(75, 97).all() and frame["readmission"].between(3, 17).all()
    assert {rating: level for rating, level in cms_2026.level_of_rating.items() if rating != level} == {2.0: 2.5}
    assert sorted(frame["label"].unique()) == [2.5, 3.0, 3.5, 4.0, 4.5, 5.0]


def test_fit_on_the_2026_tables(cms_2026):
    result = fit(cms_2026.frame)
    validation = cross_validate(cms_2026.frame)
    table = parameter_table(result, validation)
    assert result.converged and quality.fit_converged(table).passed
    assert quality.coefficient_signs(table).passed
    assert quality.cv_accuracy(table).passed
    assert result.params.betas["readmission"] < 0 < min(result.params.betas[n] for n in ("hedis", "cahps", "adherence"))
    assert validation.exact_accuracy > validation.baseline_exact_accuracy
    assert validation.within_half_star_accuracy > validation.baseline_within_half_star_accuracy
    assert validation.baseline_level == 3.5
    assert validation.confusion.to_numpy().sum() == len(cms_2026.frame)
    assert validation.calibration["observed_count"].sum() == len(cms_2026.frame)
    assert (
        validation.calibration["mean_predicted_probability"] - validation.calibration["observed_frequency"]
    ).abs().max() < 0.05
    assert 0.3 < result.pseudo_r2 < 1
    assert result.aic == pytest.approx(2 * (4 + 5) - 2 * result.log_likelihood)
