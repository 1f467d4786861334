"""Local vendor times read through the hour lookup give what ICU gives row by row, and both what Python's zoneinfo
gives, on every row; keys are trimmed as trim does."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from stars_assets.lib.providers import TimestampSpec
from stars_assets.lib.silver.expressions import (
    local_hour_params,
    local_time_note,
    timestamp_utc,
    trimmed,
    uniform_hour_offsets,
)

DAY = date(2026, 11, 2)
# Two US zones the vendors use; a half-hour change (Lord Howe); a winter "daylight" offset below standard (Dublin in
# tzdata); a zone without changes at a quarter-hour offset (Kathmandu).
ZONES = ["America/New_York", "America/Chicago", "Australia/Lord_Howe", "Europe/Dublin", "Asia/Kathmandu"]
# The notes the readings give in each zone over the two years (Lord Howe's half-hour repeat is noted too).
NOTES = {zone: {None, "nonexistent", "ambiguous"} for zone in ZONES} | {"Asia/Kathmandu": {None}}
FORMATS = {
    "%Y-%m-%d %H:%M:%S": "strftime(t, '%Y-%m-%d %H:%M:%S')",
    "iso8601": "strftime(t, '%Y-%m-%dT%H:%M:%S')",
    "hl7": "strftime(t, '%Y%m%d%H%M%S')",
}


def _times(con: duckdb.DuckDBPyConnection) -> None:
    """Every 7 minutes and 13 seconds over the two years the lookup covers, and a few times outside it."""
    con.execute(
        "CREATE OR REPLACE TABLE times AS SELECT t FROM range(TIMESTAMP '2025-01-01', TIMESTAMP '2027-01-01', "
        "INTERVAL '7 minutes 13 seconds') AS r(t) UNION ALL SELECT unnest([TIMESTAMP '2024-11-03 01:30:00', "
        "TIMESTAMP '2027-03-14 02:30:00', TIMESTAMP '2027-11-07 01:30:00', TIMESTAMP '2024-12-31 23:59:59'])"
    )


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("time_format", FORMATS)
@pytest.mark.parametrize("ambiguous", ["earlier", "later"])
def test_a_local_time_read_by_its_hour_equals_the_icu_reading(zone, time_format, ambiguous):
    spec = TimestampSpec(columns=("ts",), format=time_format, timezone=zone, ambiguous=ambiguous)
    params: dict = {}
    utc, note = timestamp_utc(spec, "v", params), local_time_note(spec, "v", params)
    looked_up = {**params, **local_hour_params(params, DAY)}
    row_by_row = {**looked_up, "v_offsets": []}  # no hour in the list: every row read by ICU
    with duckdb.connect() as con:
        _times(con)
        con.execute(f"CREATE TABLE b AS SELECT t, {FORMATS[time_format]} AS ts FROM times")
        select = f"SELECT t, {utc} AS utc, {note} AS note FROM times JOIN b USING (t)"

        def read(bound: dict) -> list:
            return con.execute(select + " ORDER BY t", {k: v for k, v in bound.items() if f"${k}" in select}).fetchall()

        by_hour, by_icu = read(looked_up), read(row_by_row)
    assert len(by_hour) == len(by_icu) > 145_000
    assert [r for r, e in zip(by_hour, by_icu, strict=True) if r != e] == []
    # The readings exercised what the lookup must get right: skipped and repeated times, where the zone has them.
    assert {r[2] for r in by_icu} == NOTES[zone]


def _zoneinfo_reading(local: datetime, zone: str, ambiguous: str) -> tuple[datetime | None, str | None]:
    """The UTC instant and note of a local time by Python's zoneinfo: the instants of its two folds that read back as it."""
    tz = ZoneInfo(zone)
    instants = set()
    for fold in (0, 1):
        utc = local - local.replace(tzinfo=tz, fold=fold).utcoffset()
        if utc.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None) == local:
            instants.add(utc)
    if not instants:
        return None, "nonexistent"
    if len(instants) == 2:
        return (min(instants) if ambiguous == "earlier" else max(instants)), "ambiguous"
    return instants.pop(), None


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("ambiguous", ["earlier", "later"])
def test_a_local_time_read_row_by_row_or_by_its_hour_is_what_zoneinfo_says(zone, ambiguous):
    """The readings themselves against Python's zoneinfo, on every row: skipped, repeated (by an hour or by Lord Howe's
    half hour) and ordinary times, inside and outside the lookup's two years."""
    spec = TimestampSpec(columns=("ts",), format="%Y-%m-%d %H:%M:%S", timezone=zone, ambiguous=ambiguous)
    params: dict = {}
    utc, note = timestamp_utc(spec, "v", params), local_time_note(spec, "v", params)
    looked_up = {**params, **local_hour_params(params, DAY)}
    with duckdb.connect() as con:
        _times(con)
        select = f"SELECT t, {utc} AS utc, {note} AS note FROM (SELECT t, strftime(t, '%Y-%m-%d %H:%M:%S') AS ts FROM times) AS b"
        by_hour, by_icu = (
            con.execute(select + " ORDER BY t", {k: v for k, v in bound.items() if f"${k}" in select}).fetchall()
            for bound in (looked_up, {**looked_up, "v_offsets": []})
        )
    expected = [(t, *_zoneinfo_reading(t, zone, ambiguous)) for t, _, _ in by_icu]
    assert len(expected) > 145_000
    assert [(r, e) for r, e in zip(by_icu, expected, strict=True) if r != e] == []
    assert [(r, e) for r, e in zip(by_hour, expected, strict=True) if r != e] == []
    assert {n for _, _, n in expected} == NOTES[zone]


@pytest.mark.parametrize("zone", ZONES)
def test_the_lookup_leaves_out_exactly_the_hours_a_change_touches(zone):
    """Checked against Python's zoneinfo: an hour is left to ICU when a local time in it is skipped or repeated or its
    offset changes within it, and every other hour holds its offset."""
    start, end = datetime(2025, 1, 1), datetime(2027, 1, 1)
    offsets = uniform_hour_offsets(zone, start, end)
    tz = ZoneInfo(zone)

    def offset(local: datetime, fold: int) -> timedelta:
        return local.replace(tzinfo=tz, fold=fold).utcoffset()

    expected = []
    hour = start
    while hour < end:
        ends = (hour, hour + timedelta(hours=1) - timedelta(microseconds=1))
        # A skipped or repeated local time reads with two offsets (fold 0 and 1); a change inside the hour gives its ends two.
        uniform = len({offset(t, fold) for t in ends for fold in (0, 1)}) == 1
        expected.append(int(offset(hour, 0).total_seconds()) // 60 if uniform else None)
        hour += timedelta(hours=1)
    assert list(offsets) == expected
    assert sum(o is None for o in offsets) == (0 if zone == "Asia/Kathmandu" else 4)


def test_a_key_is_trimmed_exactly_as_trim_does_whether_or_not_trim_runs():
    """The guard that skips trim must never skip a value trim would change: Unicode spaces at either end, an ASCII
    space, or nothing to trim; tabs and inner spaces stay, as trim leaves them."""
    spaces = [" ", "\u00a0", "\u1680", "\u2000", "\u2005", "\u200a", "\u202f", "\u205f", "\u3000"]
    cores = ["K1", "k é 1", "日本", "a\tb", ""]
    values = [None, "\t", "\tK1\t", "K1\n"] + [
        f"{left}{core}{right}" for core in cores for left in ["", *spaces] for right in ["", *spaces]
    ]
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT v, {trimmed('v')} AS guarded, trim(v) AS trimmed FROM unnest($values) AS t(v)", {"values": values}
        ).fetchall()
    assert len(rows) == len(values) == 4 + 5 * 10 * 10
    assert [(v, g, t) for v, g, t in rows if g is not t and g != t] == []
    assert {t for v, _, t in rows if v is not None and v.startswith("\u3000K1")} == {"K1"}
