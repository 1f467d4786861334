"""SQL expressions built from provider YAML: timestamps, code mappings and key templates.

Every value taken from config travels as a bound parameter; only validated snake_case column
names are written into SQL text. Parameter names carry a prefix so several providers' SQL can
be combined in one statement.
"""

from __future__ import annotations

import functools
from datetime import date, datetime

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
# the offset in minutes of a local time in that hour, computed with the same ICU calls; an hour in which a time does
# not read back as itself, reads back twice, or whose first and last microsecond differ in offset holds NULL, and its
# rows (and any time outside the list) are read by ICU row by row.
LOCAL_HOURS_FROM = "local_hours_from"
_ZONE_PARAM = "_zone"
_OFFSETS_PARAM = "_offsets"
UNIFORM_HOUR_OFFSETS_SQL = """
WITH hours AS (SELECT h, h + INTERVAL 1 HOUR - INTERVAL 1 MICROSECOND AS last FROM range($start, $end, INTERVAL 1 HOUR) AS t(h)),
instants AS (SELECT h, last, timezone($zone, h) AS first_instant, timezone($zone, last) AS last_instant FROM hours)
SELECT list(
    CASE WHEN timezone($zone, first_instant) = h AND timezone($zone, last_instant) = last
              AND timezone($zone, first_instant - INTERVAL 1 HOUR) <> h AND timezone($zone, first_instant + INTERVAL 1 HOUR) <> h
              AND timezone($zone, last_instant - INTERVAL 1 HOUR) <> last AND timezone($zone, last_instant + INTERVAL 1 HOUR) <> last
              AND h - timezone('UTC', first_instant) = last - timezone('UTC', last_instant)
         THEN CAST(epoch(h - timezone('UTC', first_instant)) // 60 AS INTEGER) END
    ORDER BY h)
FROM instants
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
    hour is uniform (LOCAL_HOURS_FROM; the statement binds local_hour_params) and otherwise by ICU:
    a time the autumn change repeats is read as the spec's `ambiguous` choice: DuckDB gives the
    later (standard time) instant, and the earlier is one hour before it, when that hour reads back
    as the same local time. A time the spring change skips does not read back as itself and gives NULL."""
    text = _text(spec)
    if spec.format == "epoch_ms":
        number = f"try_cast({text} AS BIGINT)"
        return f"epoch_ms(CASE WHEN {number} IS NOT NULL THEN least(greatest({number}, {EPOCH_MS_MIN}), {EPOCH_MS_MAX}) END)"
    _bind(spec, prefix, params)
    local = _local(spec, prefix, params)
    zone = f"${prefix}{_ZONE_PARAM}"
    instant = f"timezone({zone}, {local})"
    shift = "- INTERVAL 1 HOUR" if spec.ambiguous == "earlier" else "+ INTERVAL 1 HOUR"
    offset = _hour_offset(prefix, local)
    local_utc = (
        f"CASE WHEN {offset} IS NOT NULL THEN {local} - to_minutes({offset}) "
        f"ELSE timezone('UTC', CASE WHEN timezone({zone}, {instant}) <> {local} THEN NULL "
        f"WHEN timezone({zone}, {instant} {shift}) = {local} THEN {instant} {shift} ELSE {instant} END) END"
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
    zone = f"${prefix}{_ZONE_PARAM}"
    instant = f"timezone({zone}, {local})"
    return (
        f"CASE WHEN {_hour_offset(prefix, local)} IS NOT NULL THEN NULL "
        f"WHEN timezone({zone}, {instant}) <> {local} THEN 'nonexistent' "
        f"WHEN timezone({zone}, {instant} - INTERVAL 1 HOUR) = {local} OR timezone({zone}, {instant} + INTERVAL 1 HOUR) = {local} "
        "THEN 'ambiguous' END"
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
