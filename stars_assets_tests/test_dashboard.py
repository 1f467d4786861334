"""The dashboard pages under Streamlit's AppTest, over a real published lake: every figure shown equals the
same figure computed directly on the lake's Delta tables with DuckDB for the same filters, and the predictor
equals `stars-predict --json` under both calibrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import duckdb
import pandas as pd
import pytest
from deltalake import DeltaTable
from streamlit.testing.v1 import AppTest

from stars_assets.dashboard import data
from stars_assets.dashboard.app import PAGES, PAGES_DIR
from stars_assets.lib.lake import arrow_dataset

IDENTIFIER_COLUMNS = {"member_id", "mbi", "vendor_ref", "gap_id", "birth_date"}


@pytest.fixture(scope="module")
def lake(dashboard_world):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STARS_LAKE_URI", str(dashboard_world.lake))
        yield dashboard_world.lake


def on_lake(lake, sql: str, **tables: str) -> pd.DataFrame:
    """Run SQL over Delta tables read straight from the lake (name=layer/table)."""
    con = duckdb.connect()
    for name, path in tables.items():
        con.register(name, arrow_dataset(DeltaTable(str(lake / path))).to_table())
    return con.sql(sql).df()


def run_page(script: str, **query: str) -> AppTest:
    app = AppTest.from_file(str(PAGES_DIR / script), default_timeout=120)
    app.query_params.update(query)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def assert_frames_match(shown: pd.DataFrame, expected: pd.DataFrame, key: list[str]) -> None:
    shown = shown[expected.columns].sort_values(key, ignore_index=True)
    expected = expected.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(shown, expected, check_dtype=False, check_exact=False, rtol=1e-9)


def members(warehouse) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            value
            for (value,) in con.execute(
                "SELECT member_id FROM silver.members UNION SELECT mbi FROM silver.members WHERE mbi IS NOT NULL"
            ).fetchall()
        }


CAMPAIGN_SQL = """
SELECT {column} AS {level}, sum(members_targeted) AS members_touched, sum(members_engaged) AS members_engaged,
       sum(appointments_booked) AS appointments_booked, sum(closed_within_30d) AS closed_30d,
       sum(closed_within_90d) / nullif(sum(gaps_mature_90d), 0) AS closure_rate_90d,
       sum(attempts) / nullif(sum(gaps_closed), 0) AS touches_per_closure
FROM campaign WHERE as_of_week_end = (SELECT max(as_of_week_end) FROM campaign) {where}
GROUP BY 1
"""


def test_campaign_page_by_channel_equals_the_lake(lake):
    app = run_page("campaign.py")
    expected = on_lake(
        lake, CAMPAIGN_SQL.format(column="channel", level="channel", where=""), campaign="gold/campaign_effectiveness"
    )
    assert len(expected) >= 3
    assert_frames_match(app.dataframe[0].value, expected, ["channel"])
    assert [title.value for title in app.title] == ["Campaign effectiveness"]
    assert len(app.get("vega_lite_chart")) == 2 and len(app.get("download_button")) == 1


def test_campaign_drill_path_from_the_url(lake):
    first = on_lake(
        lake,
        "SELECT channel, region FROM campaign GROUP BY ALL ORDER BY count(*) DESC LIMIT 1",
        campaign="gold/campaign_effectiveness",
    ).iloc[0]
    app = run_page("campaign.py", channel=first["channel"], region=first["region"], cohort="chronic_condition")
    expected = on_lake(
        lake,
        CAMPAIGN_SQL.format(
            column="chronic_condition",
            level="cohort",
            where=f"AND channel = '{first['channel']}' AND region = '{first['region']}'",
        ),
        campaign="gold/campaign_effectiveness",
    )
    assert_frames_match(app.dataframe[0].value, expected, ["cohort"])
    assert app.selectbox(key="campaign_channel").value == first["channel"]
    assert app.selectbox(key="campaign_region").value == first["region"]


def test_a_filter_changes_the_url_and_the_figures(lake):
    app = run_page("campaign.py")
    week = min(app.selectbox(key="campaign_week").options)
    channel = app.selectbox(key="campaign_channel").options[1]
    app.selectbox(key="campaign_week").set_value(date.fromisoformat(week)).run()
    app.selectbox(key="campaign_channel").set_value(channel).run()
    assert not app.exception
    assert app.query_params["channel"] == channel and app.query_params["week"] == week
    expected = on_lake(
        lake,
        f"""
        SELECT region, sum(members_targeted) AS members_touched, sum(members_reached) AS members_reached
        FROM campaign WHERE as_of_week_end = DATE '{week}' AND channel = '{channel}' GROUP BY 1""",
        campaign="gold/campaign_effectiveness",
    )
    assert_frames_match(app.dataframe[0].value, expected, ["region"])


def test_campaign_view_drills_down_and_back_up():
    view = data.CampaignView.from_params({"channel": "SMS", "cohort": "age_band", "metric": "closure_rate_30d"})
    assert view.level == "region"
    deeper = view.drill("NORTH").drill("65-74")
    assert (deeper.region, deeper.cohort_value, deeper.level) == ("NORTH", "65-74", "measure")
    assert data.CampaignView.from_params(deeper.to_params()) == deeper
    assert deeper.up_to("region") == view
    assert data.CampaignView.from_params({"week": "not a date", "cohort": "nonsense", "metric": "x"}) == data.CampaignView()


def test_care_gap_page_equals_the_lake(lake):
    app = run_page("care_gaps.py")
    week_filter = "as_of_week_end = (SELECT max(as_of_week_end) FROM gaps)"
    by_cell = on_lake(
        lake,
        f"""
        SELECT contract_id, measure_code, count(*) FILTER (WHERE NOT is_closed) AS open,
               count(*) FILTER (WHERE is_closed) AS closed, count(*) AS gaps
        FROM gaps WHERE {week_filter} GROUP BY ALL""",
        gaps="gold/care_gap_closure",
    )
    assert_frames_match(app.dataframe[0].value, by_cell, ["contract_id", "measure_code"])
    channels = on_lake(
        lake,
        f"""
        SELECT coalesce(attributed_channel, 'UNATTRIBUTED') AS attributed_channel, count(*) AS closures
        FROM gaps WHERE {week_filter} AND is_closed GROUP BY 1""",
        gaps="gold/care_gap_closure",
    )
    assert_frames_match(app.dataframe[1].value, channels, ["attributed_channel"])
    assert len(app.get("vega_lite_chart")) == 4


def test_care_gap_page_for_one_contract_and_measure(lake):
    app = run_page("care_gaps.py")
    contract = app.selectbox(key="gaps_contract").options[1]
    app.selectbox(key="gaps_contract").set_value(contract).run()
    shown = app.dataframe[0].value
    assert set(shown["contract_id"]) == {contract}
    expected = on_lake(
        lake,
        f"""
        SELECT contract_id, measure_code, count(*) AS gaps FROM gaps
        WHERE as_of_week_end = (SELECT max(as_of_week_end) FROM gaps) AND contract_id = '{contract}' GROUP BY ALL""",
        gaps="gold/care_gap_closure",
    )
    assert_frames_match(shown, expected, ["measure_code"])


@pytest.mark.parametrize("model", ["fitted", "seed"])
def test_contract_outlook_equals_the_lake(lake, model):
    app = run_page("outlook.py")
    contract = app.selectbox(key="outlook_contract").value
    app.radio(key="outlook_model").set_value(model).run()
    rows = on_lake(
        lake,
        f"""
        SELECT as_of_week_end, expected_stars, p_four_plus, projected_summary, reward_factor FROM p
        WHERE contract_id = '{contract}' AND model = '{model}' ORDER BY as_of_week_end""",
        p="model/contract_predictions",
    )
    assert len(rows) == 2
    shown = app.dataframe[0].value
    assert_frames_match(
        shown.assign(as_of_week_end=pd.to_datetime(shown["as_of_week_end"])),
        rows.assign(as_of_week_end=pd.to_datetime(rows["as_of_week_end"])),
        ["as_of_week_end"],
    )
    latest = rows.iloc[-1]
    assert [m.value for m in app.metric] == [
        f"{latest['expected_stars']:.2f} stars",
        f"{latest['p_four_plus']:.1%}",
        f"{latest['projected_summary']:g} stars",
        f"+{latest['reward_factor']:g}",
    ]
    assert (shown["stars_low"] <= shown["expected_stars"]).all() and (shown["expected_stars"] <= shown["stars_high"]).all()
    levers = on_lake(
        lake,
        f"""
        SELECT lever_rank, measure_id, rounded_gain FROM l WHERE contract_id = '{contract}'
          AND as_of_week_end = (SELECT max(as_of_week_end) FROM l)""",
        l="model/measure_levers",
    )
    shown_levers = app.dataframe[1].value
    assert list(shown_levers["measure_id"]) == list(levers.sort_values(["lever_rank", "measure_id"])["measure_id"])
    assert_frames_match(shown_levers, levers, ["lever_rank", "measure_id"])


INPUTS = {"hedis": 81.5, "cahps": 4.1, "adherence": 88.0, "readmission": 11.5}


@pytest.mark.parametrize("model", ["seed", "fitted"])
def test_predictor_equals_stars_predict(lake, dashboard_world, model):
    app = AppTest.from_file(str(PAGES_DIR / "predictor.py"), default_timeout=120)
    app.run()
    for name, value in INPUTS.items():
        app.slider(key=f"predictor_{name}").set_value(value)
    app.radio(key="predictor_model").set_value(model)
    app.run()
    assert not app.exception
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "stars_assets.cli.predict",
            *[f"--{k}={v}" for k, v in INPUTS.items()],
            "--model",
            model,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "STARS_WAREHOUSE": str(dashboard_world.warehouse), "STARS_LAKE_URI": str(lake)},
    )
    report = json.loads(cli.stdout)
    assert report["model"] == model
    shown = app.dataframe[0].value
    assert dict(zip(shown["stars"], shown["probability"])) == pytest.approx(report["probabilities"], abs=1e-12)
    assert [m.value for m in app.metric] == [f"{report['expected_stars']:.2f} stars", f"{report['p_four_plus']:.1%}"]
    comparison = app.dataframe[1].value.set_index("model")
    assert comparison.loc[model, "expected_stars"] == pytest.approx(report["expected_stars"], abs=1e-12)
    assert comparison.loc[model, "p_four_plus"] == pytest.approx(report["p_four_plus"], abs=1e-12)
    shown_levers = app.dataframe[2].value
    assert list(shown_levers["input"]) == [lever["input"] for lever in report["levers"]]
    assert list(shown_levers["gain"]) == pytest.approx([lever["gain"] for lever in report["levers"]], abs=1e-12)


def test_predictor_reward_factor_toggle(lake):
    app = AppTest.from_file(str(PAGES_DIR / "predictor.py"), default_timeout=120)
    app.run()
    for name, value in {"hedis": 95.0, "cahps": 4.8, "adherence": 95.0, "readmission": 5.0}.items():
        app.slider(key=f"predictor_{name}").set_value(value)
    app.run()
    assert len(app.metric) == 2  # no reward factor until the toggle is on
    app.toggle(key="predictor_reward").set_value(True).run()
    app.slider(key="predictor_variance").set_value(0.5).run()
    report = data.predictor_report(data.SEED, {"hedis": 95.0, "cahps": 4.8, "adherence": 95.0, "readmission": 5.0})
    # A high mean (>= 3.93) with low variance (< 0.91) earns CMS's +0.4.
    assert report["expected_stars"] >= 3.95
    assert app.metric[2].value == f"{min(5.0, report['expected_stars'] + 0.4):.2f} stars" and app.metric[2].delta == "+0.4"
    app.slider(key="predictor_variance").set_value(1.5).run()  # high variance: no reward
    assert app.metric[2].delta == "+0"


def test_quality_page_equals_the_lake(lake):
    app = run_page("quality.py")
    expected = on_lake(
        lake, "SELECT delivery_date, provider, reason, sum(rows) AS rows FROM q GROUP BY ALL", q="quality/quarantine_summary"
    )
    assert len(expected) > 0
    shown = app.dataframe[0].value
    assert_frames_match(
        shown.assign(delivery_date=pd.to_datetime(shown["delivery_date"])),
        expected.assign(delivery_date=pd.to_datetime(expected["delivery_date"])),
        ["delivery_date", "provider", "reason"],
    )
    outcomes = on_lake(
        lake,
        """
        SELECT CAST(evaluated_at AS DATE) AS day,
               CASE WHEN passed THEN 'passed' ELSE 'failed ' || lower(severity) END AS outcome, count(*) AS evaluations
        FROM c GROUP BY ALL""",
        c="quality/check_outcomes",
    )
    assert outcomes["evaluations"].sum() > 10
    shown = app.dataframe[1].value
    assert_frames_match(
        shown.assign(day=pd.to_datetime(shown["day"])), outcomes.assign(day=pd.to_datetime(outcomes["day"])), ["day", "outcome"]
    )
    freshness = on_lake(
        lake,
        """
        SELECT provider, hours_since, sla_hours, is_fresh FROM f
        QUALIFY row_number() OVER (PARTITION BY provider ORDER BY evaluated_at DESC) = 1""",
        f="quality/delivery_freshness",
    )
    assert len(freshness) >= 5
    assert_frames_match(app.dataframe[3].value, freshness, ["provider"])
    assert len(app.get("vega_lite_chart")) == 3


@pytest.mark.parametrize("script", [script for script, _, _ in PAGES])
def test_no_member_identifier_on_any_page(lake, dashboard_world, script):
    app = run_page(script)
    known = members(dashboard_world.warehouse)
    for frame in app.dataframe:
        shown = frame.value
        assert not IDENTIFIER_COLUMNS & set(shown.columns)
        cells = set(shown.astype(str).to_numpy().ravel())
        assert not cells & known
    assert app.title and len(app.get("vega_lite_chart")) >= 1


@pytest.mark.parametrize("script", [script for script, _, _ in PAGES if script != "predictor.py"])
def test_a_page_over_an_unpublished_lake_says_so(tmp_path, monkeypatch, script):
    monkeypatch.setenv("STARS_LAKE_URI", str(tmp_path / "empty-lake"))
    app = AppTest.from_file(str(PAGES_DIR / script), default_timeout=60)
    app.run()
    assert not app.exception
    assert app.info and all("not published to the lake yet" in note.value for note in app.info)
