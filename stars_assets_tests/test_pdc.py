"""PDC on hand-built fill histories, checked against a day-by-day simulation written here."""

from datetime import date, timedelta

import duckdb
import pytest

from stars_assets.lib.gold.pdc import MEMBER_PDC_SQL, pdc_parameters

AS_OF_YEAR_END = date(2026, 12, 31)


def simulate_pdc(fills: list[tuple[date, int]], as_of: date) -> tuple[int, int]:
    """(covered days, treatment days) by walking the calendar: an independent oracle."""
    fills = sorted(f for f in fills if f[0] <= as_of and f[0].year == as_of.year)
    period_end = min(as_of, date(as_of.year, 12, 31))
    covered: set[date] = set()
    next_free = fills[0][0]
    for fill_date, supply in fills:
        start = max(fill_date, next_free)
        covered.update(start + timedelta(days=i) for i in range(supply))
        next_free = start + timedelta(days=supply)
    first = fills[0][0]
    return sum(first <= d <= period_end for d in covered), (period_end - first).days + 1


def pdc_rows(histories: dict[str, list[tuple[date, int]]], as_of: date) -> dict[str, tuple]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA silver")
    con.execute("CREATE TABLE silver.rx_fills (member_id VARCHAR, drug_class VARCHAR, fill_date DATE, days_supply INTEGER)")
    for member, fills in histories.items():
        for fill_date, supply in fills:
            con.execute("INSERT INTO silver.rx_fills VALUES (?, 'STATIN', ?, ?)", [member, fill_date, supply])
    rows = con.execute(
        f"SELECT member_id, covered_days, treatment_days, eligible, pdc, adherent FROM ({MEMBER_PDC_SQL})", pdc_parameters(as_of)
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


HISTORIES = {
    "no_overlap": [(date(2026, 1, 1), 30), (date(2026, 2, 15), 30)],
    "overlap_shifts_forward": [(date(2026, 1, 1), 30), (date(2026, 1, 20), 30)],
    "single_fill": [(date(2026, 3, 1), 90)],
    "two_fills_same_day": [(date(2026, 3, 1), 30), (date(2026, 3, 1), 30)],
    "short_period": [(date(2026, 11, 1), 30), (date(2026, 11, 20), 30)],
    "supply_past_period_end": [(date(2026, 10, 1), 90), (date(2026, 12, 1), 90)],
    "chain_restarts_after_gap": [
        (date(2026, 1, 1), 30),
        (date(2026, 1, 15), 30),
        (date(2026, 6, 1), 30),
        (date(2026, 6, 10), 30),
    ],
    "adherent_quarterly": [(date(2026, 1, 5), 90), (date(2026, 4, 1), 90), (date(2026, 6, 28), 90), (date(2026, 9, 30), 90)],
}


def test_hand_worked_cases():
    rows = pdc_rows(HISTORIES, AS_OF_YEAR_END)
    # Overlap: the second fill starts when the first runs out, so 60 days are covered, not 49.
    assert rows["overlap_shifts_forward"][0] == 60
    assert rows["no_overlap"][0] == 60
    # Coverage past the period end does not count: Oct 1 - Dec 31 is 92 days, all covered.
    assert rows["supply_past_period_end"][:2] == (92, 92)
    assert rows["supply_past_period_end"][3] == pytest.approx(1.0)
    # Eligibility: two fills on different dates and at least 91 treatment days.
    assert rows["single_fill"][2] is False
    assert rows["two_fills_same_day"][2] is False
    assert rows["short_period"][1] == 61 and rows["short_period"][2] is False
    assert rows["no_overlap"][2] is True and rows["no_overlap"][4] is False
    assert rows["adherent_quarterly"][2] is True and rows["adherent_quarterly"][4] is True


@pytest.mark.parametrize("as_of", [date(2026, 3, 31), date(2026, 7, 15), AS_OF_YEAR_END])
def test_matches_day_by_day_simulation(as_of):
    rows = pdc_rows(HISTORIES, as_of)
    for member, fills in HISTORIES.items():
        if not any(f[0] <= as_of for f in fills):
            assert member not in rows
            continue
        covered, treatment = simulate_pdc(fills, as_of)
        assert rows[member][:2] == (covered, treatment), member
