"""SQL expressions built from provider YAML: timestamps, code mappings and key templates.

Every value taken from config travels as a bound parameter; only validated snake_case column
names are written into SQL text. Parameter names carry a prefix so several providers' SQL can
be combined in one statement.
"""

from __future__ import annotations

from stars_assets.lib.providers import CodeMapping, TimestampSpec, key_template_parts

# Epoch values beyond what a TIMESTAMP holds (years 1..9999) are clamped to its ends, so a
# vendor's absurd number (the largest 64-bit integer) becomes an absurd time that the window rules
# quarantine, instead of a conversion error that fails the whole day.
EPOCH_MS_MIN, EPOCH_MS_MAX = -62135596800000, 253402300799999
# ISO 8601 / HL7 texts that carry their own offset.
ISO_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
HL7_OFFSET = r"[+-][0-9]{4}$"


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
    params[f"{prefix}_zone"] = spec.timezone
    if spec.format == "iso8601":
        params[f"{prefix}_offset"] = ISO_OFFSET
    elif spec.format == "hl7":
        params[f"{prefix}_offset"] = HL7_OFFSET


def timestamp_utc(spec: TimestampSpec, prefix: str, params: dict) -> str:
    """A naive UTC TIMESTAMP, or NULL when the text does not parse or names a local time that does
    not exist (see local_time_note).

    A local time (no offset) is read in the vendor's declared zone. A time the autumn change
    repeats is read as the spec's `ambiguous` choice: DuckDB gives the later (standard time)
    instant, and the earlier is one hour before it, when that hour reads back as the same local
    time. A time the spring change skips does not read back as itself and gives NULL."""
    text = _text(spec)
    if spec.format == "epoch_ms":
        number = f"try_cast({text} AS BIGINT)"
        return f"epoch_ms(CASE WHEN {number} IS NOT NULL THEN least(greatest({number}, {EPOCH_MS_MIN}), {EPOCH_MS_MAX}) END)"
    _bind(spec, prefix, params)
    local = _local(spec, prefix, params)
    zone = f"${prefix}_zone"
    instant = f"timezone({zone}, {local})"
    shift = "- INTERVAL 1 HOUR" if spec.ambiguous == "earlier" else "+ INTERVAL 1 HOUR"
    local_utc = (
        f"timezone('UTC', CASE WHEN timezone({zone}, {instant}) <> {local} THEN NULL "
        f"WHEN timezone({zone}, {instant} {shift}) = {local} THEN {instant} {shift} ELSE {instant} END)"
    )
    if spec.format == "iso8601":
        return f"coalesce(timezone('UTC', try_cast(CASE WHEN regexp_matches({text}, ${prefix}_offset) THEN {text} END AS TIMESTAMPTZ)), {local_utc})"
    if spec.format == "hl7":
        return f"coalesce(timezone('UTC', try_strptime(CASE WHEN regexp_matches({text}, ${prefix}_offset) THEN {text} END, '%Y%m%d%H%M%S%z')), {local_utc})"
    return local_utc


def local_time_note(spec: TimestampSpec, prefix: str, params: dict) -> str:
    """'nonexistent' for a local time the spring change skips, 'ambiguous' for one the autumn
    change repeats, else NULL (also for times with an offset or in epoch units)."""
    if spec.format == "epoch_ms":
        return "CAST(NULL AS VARCHAR)"
    _bind(spec, prefix, params)
    local = _local(spec, prefix, params)
    zone = f"${prefix}_zone"
    instant = f"timezone({zone}, {local})"
    return (
        f"CASE WHEN timezone({zone}, {instant}) <> {local} THEN 'nonexistent' "
        f"WHEN timezone({zone}, {instant} - INTERVAL 1 HOUR) = {local} OR timezone({zone}, {instant} + INTERVAL 1 HOUR) = {local} "
        "THEN 'ambiguous' END"
    )


def mapped_code(mapping: CodeMapping, prefix: str, params: dict) -> str:
    """The canonical value for a vendor code, NULL for an unknown code."""
    if mapping.value is not None:
        params[f"{prefix}_value"] = mapping.value
        return f"${prefix}_value"
    params[f"{prefix}_codes"] = list(mapping.codes.keys())
    params[f"{prefix}_targets"] = list(mapping.codes.values())
    return f"map_extract_value(map(${prefix}_codes, ${prefix}_targets), trim(b.{mapping.column}))"


def key_expression(template: str, prefix: str, params: dict) -> str:
    pieces = []
    for number, (kind, text) in enumerate(key_template_parts(template)):
        if kind == "column":
            pieces.append(f"trim(b.{text})")
        else:
            params[f"{prefix}_{number}"] = text
            pieces.append(f"${prefix}_{number}")
    return pieces[0] if len(pieces) == 1 else "concat(" + ", ".join(pieces) + ")"
