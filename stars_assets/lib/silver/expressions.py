"""SQL expressions built from provider YAML: timestamps, code mappings and key templates.

Every value taken from config travels as a bound parameter; only validated snake_case column
names are written into SQL text. Parameter names carry a prefix so several providers' SQL can
be combined in one statement.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import NamedTuple

import duckdb

from stars_assets.lib.providers import CodeMapping, TimestampSpec, key_template_parts

# Epoch values beyond what a TIMESTAMP holds (years 1..9999) are clamped to its ends, so a
# vendor's absurd number (the largest 64-bit integer) becomes an absurd time that the window rules
# quarantine, instead of a conversion error that fails the whole day.
EPOCH_MS_MIN, EPOCH_MS_MAX = -62135596800000, 253402300799999
# ISO 8601 / HL7 texts that carry their own offset.
ISO_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
HL7_OFFSET = r"[+-][0-9]{4}$"

# A local time's zone offset, looked up by its hour. Reading a time with ICU's timezone(), as timestamp_utc and
# local_time_note do for a time in an hour a change touches, takes several calls a row: the two expressions over a
# full day's 5.1 million dialer rows took 3.1-3.5 s, and 0.75-0.77 s with the lookup (ihwa's 1.4 million: 1.05-1.21
# against 0.31-0.38 s; the same values on every row), in each of a large run's two validation passes. The list holds,
# for every hour from LOCAL_HOURS_FROM (January 1 of the year before the delivery) to the end of the delivery's year,
# the offset in minutes of a local time in that hour, computed with the same ICU calls (_icu_utc); an hour whose first
# or last microsecond a change skips or repeats, or whose two ends differ in offset, holds NULL, and its rows (and any
# time outside the list) are read by ICU row by row.
LOCAL_HOURS_FROM = "local_hours_from"
_ZONE_PARAM = "_zone"
_OFFSETS_PARAM = "_offsets"


class _Readings(NamedTuple):
    """SQL for what ICU says of a naive local time in a zone (see _readings)."""

    before: str  # the zone's offset a day before DuckDB's reading of the time (an INTERVAL)
    after: str  # and a day after it
    earlier: str  # the earlier of the two UTC instants the time can name
    later: str
    earlier_reads_back: str  # whether that instant reads back as the local time
    later_reads_back: str

    @property
    def one_offset(self) -> str:
        """Whether the zone has one offset on both sides: the time names one instant, with no read-back needed."""
        return f"{self.before} = {self.after}"


def _readings(zone: str, local: str) -> _Readings:
    """The two UTC instants a naive local time can name in `zone`: the local time less the zone's offsets a day before
    and a day after DuckDB's reading of it. A zone changes at most once in two days, by whatever amount (Lord Howe by
    half an hour): with the same offset before and after, the time names one instant; else a time a change repeats
    names two that read back as it, one it skips none."""
    instant = f"timezone({zone}, {local})"

    def offset(at: str) -> str:
        return f"(timezone({zone}, {at}) - timezone('UTC', {at}))"

    def reads_back(utc: str) -> str:
        return f"(timezone({zone}, timezone('UTC', {utc})) = {local})"

    before, after = offset(f"{instant} - INTERVAL 1 DAY"), offset(f"{instant} + INTERVAL 1 DAY")
    earlier, later = f"({local} - greatest({before}, {after}))", f"({local} - least({before}, {after}))"
    return _Readings(before, after, earlier, later, reads_back(earlier), reads_back(later))


def _icu_utc(zone: str, local: str, ambiguous: str | None) -> str:
    """The naive UTC instant of a local time, read row by row by ICU: NULL for a time a change skips; for one it repeats,
    the `ambiguous` choice ('earlier' or 'later'), or NULL without one."""
    r = _readings(zone, local)
    repeated = {"earlier": r.earlier, "later": r.later}.get(ambiguous, f"CASE WHEN {r.earlier} = {r.later} THEN {r.earlier} END")
    # Most times are far from a change: one offset, and no read-back needed.
    return (
        f"CASE WHEN {r.one_offset} THEN {local} - {r.before} "
        f"WHEN {r.earlier_reads_back} AND {r.later_reads_back} THEN {repeated} "
        f"WHEN {r.earlier_reads_back} THEN {r.earlier} WHEN {r.later_reads_back} THEN {r.later} END"
    )


def _single_offset_minutes(zone: str, local: str) -> str:
    """The zone's offset in minutes at a local time that names one instant; NULL for a skipped or repeated time."""
    return f"CAST(epoch({local} - ({_icu_utc(zone, local, None)})) // 60 AS INTEGER)"


UNIFORM_HOUR_OFFSETS_SQL = f"""
WITH hours AS (SELECT h, h + INTERVAL 1 HOUR - INTERVAL 1 MICROSECOND AS last FROM range($start, $end, INTERVAL 1 HOUR) AS t(h)),
ends AS (SELECT h, {_single_offset_minutes("$zone", "h")} AS first, {_single_offset_minutes("$zone", "last")} AS last FROM hours)
SELECT list(CASE WHEN first = last THEN first END ORDER BY h) FROM ends
"""


def _text(spec: TimestampSpec) -> str:
    columns = [f"b.{c}" for c in spec.columns]
    return columns[0] if len(columns) == 1 else f"concat_ws(' ', {', '.join(columns)})"


def _local(spec: TimestampSpec, prefix: str, params: dict) -> str | None:
    """SQL for the naive local wall-clock time of a text without an offset (None: epoch)."""
    text = _text(spec)
    if spec.format == "epoch_ms":
        return None
    if spec.format == "iso8601":
        return f"CASE WHEN NOT regexp_matches({text}, ${prefix}_offset) THEN try_cast({text} AS TIMESTAMP) END"
    if spec.format == "hl7":
        return (
            f"CASE WHEN NOT regexp_matches({text}, ${prefix}_offset) "
            f"THEN coalesce(try_strptime({text}, '%Y%m%d%H%M%S'), try_strptime({text}, '%Y%m%d%H%M')) END"
        )
    params[f"{prefix}_format"] = spec.format
    return f"try_strptime({text}, ${prefix}_format)"


def _bind(spec: TimestampSpec, prefix: str, params: dict) -> None:
    params[f"{prefix}{_ZONE_PARAM}"] = spec.timezone
    if spec.format == "iso8601":
        params[f"{prefix}_offset"] = ISO_OFFSET
    elif spec.format == "hl7":
        params[f"{prefix}_offset"] = HL7_OFFSET


def timestamp_utc(spec: TimestampSpec, prefix: str, params: dict) -> str:
    """A naive UTC TIMESTAMP, or NULL when the text does not parse or names a local time that does
    not exist (see local_time_note).

    A local time (no offset) is read in the vendor's declared zone, by its hour's offset where the
    hour is uniform (LOCAL_HOURS_FROM; the statement binds local_hour_params) and otherwise by ICU
    (_readings): a time a change repeats is read as the spec's `ambiguous` choice, and a time a
    change skips gives NULL."""
    text = _text(spec)
    if spec.format == "epoch_ms":
        number = f"try_cast({text} AS BIGINT)"
        return f"epoch_ms(CASE WHEN {number} IS NOT NULL THEN least(greatest({number}, {EPOCH_MS_MIN}), {EPOCH_MS_MAX}) END)"
    _bind(spec, prefix, params)
    local = _local(spec, prefix, params)
    offset = _hour_offset(prefix, local)
    local_utc = (
        f"CASE WHEN {offset} IS NOT NULL THEN {local} - to_minutes({offset}) "
        f"ELSE {_icu_utc(f'${prefix}{_ZONE_PARAM}', local, spec.ambiguous)} END"
    )
    if spec.format == "iso8601":
        return f"coalesce(timezone('UTC', try_cast(CASE WHEN regexp_matches({text}, ${prefix}_offset) THEN {text} END AS TIMESTAMPTZ)), {local_utc})"
    if spec.format == "hl7":
        return f"coalesce(timezone('UTC', try_strptime(CASE WHEN regexp_matches({text}, ${prefix}_offset) THEN {text} END, '%Y%m%d%H%M%S%z')), {local_utc})"
    return local_utc


def local_time_note(spec: TimestampSpec, prefix: str, params: dict) -> str:
    """'nonexistent' for a local time the spring change skips, 'ambiguous' for one the autumn
    change repeats, else NULL (also for times with an offset or in epoch units, and in a uniform hour)."""
    if spec.format == "epoch_ms":
        return "CAST(NULL AS VARCHAR)"
    _bind(spec, prefix, params)
    local = _local(spec, prefix, params)
    r = _readings(f"${prefix}{_ZONE_PARAM}", local)
    return (
        f"CASE WHEN {_hour_offset(prefix, local)} IS NOT NULL OR {r.one_offset} THEN NULL "
        f"WHEN NOT {r.earlier_reads_back} AND NOT {r.later_reads_back} THEN 'nonexistent' "
        f"WHEN {r.earlier_reads_back} AND {r.later_reads_back} AND {r.earlier} <> {r.later} THEN 'ambiguous' END"
    )


def _hour_offset(prefix: str, local: str) -> str:
    """The offset in minutes of the local time's hour (NULL: not uniform, or outside the list)."""
    return (
        f"(CASE WHEN {local} >= ${LOCAL_HOURS_FROM} "
        f"THEN list_extract(${prefix}{_OFFSETS_PARAM}, datediff('hour', ${LOCAL_HOURS_FROM}, {local}) + 1) END)"
    )


def local_hour_params(params: dict, day: date) -> dict:
    """The hour lookups of every zone the expressions built into `params` read, for a delivery on `day`."""
    start, end = datetime(day.year - 1, 1, 1), datetime(day.year + 1, 1, 1)
    zones = {name.removesuffix(_ZONE_PARAM): zone for name, zone in params.items() if name.endswith(_ZONE_PARAM)}
    if not zones:  # no local times: the statement names no lookup, and DuckDB refuses a parameter it does not name
        return {}
    return {
        LOCAL_HOURS_FROM: start,
        **{f"{prefix}{_OFFSETS_PARAM}": list(uniform_hour_offsets(zone, start, end)) for prefix, zone in zones.items()},
    }


@functools.lru_cache(maxsize=16)
def uniform_hour_offsets(zone: str, start: datetime, end: datetime) -> tuple[int | None, ...]:
    """Per hour from `start` to `end`: the zone's offset in minutes for every local time in it, or None where it is not
    one offset for the whole hour. Computed by the ICU calls the row-by-row reading makes (a fresh in-memory DuckDB)."""
    with duckdb.connect() as con:
        return tuple(con.execute(UNIFORM_HOUR_OFFSETS_SQL, {"start": start, "end": end, "zone": zone}).fetchone()[0])


def mapped_code(mapping: CodeMapping, prefix: str, params: dict) -> str:
    """The canonical value for a vendor code, NULL for an unknown code."""
    if mapping.value is not None:
        params[f"{prefix}_value"] = mapping.value
        return f"${prefix}_value"
    params[f"{prefix}_codes"] = list(mapping.codes.keys())
    params[f"{prefix}_targets"] = list(mapping.codes.values())
    return f"map_extract_value(map(${prefix}_codes, ${prefix}_targets), trim(b.{mapping.column}))"


def trimmed(value: str) -> str:
    """trim(value), skipped where it cannot change the value. DuckDB's trim removes Unicode space separators and reads
    every character for them: a full day's 22 million engage event ids took 3.5-4.0 s trimmed, 0.7 s when only a value
    that is not all ASCII, starts with a byte up to a space, or ends with a space is trimmed (the same values). A
    column of repeated values (dictionary-compressed) is trimmed once per distinct value anyway: this is for keys."""
    return f"CASE WHEN strlen({value}) <> length({value}) OR {value} < '!' OR suffix({value}, ' ') THEN trim({value}) ELSE {value} END"


def key_expression(template: str, prefix: str, params: dict) -> str:
    pieces = []
    for number, (kind, text) in enumerate(key_template_parts(template)):
        if kind == "column":
            pieces.append(trimmed(f"b.{text}"))
        else:
            params[f"{prefix}_{number}"] = text
            pieces.append(f"${prefix}_{number}")
    return pieces[0] if len(pieces) == 1 else "concat(" + ", ".join(pieces) + ")"
