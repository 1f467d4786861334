"""SQL expressions built from provider YAML: timestamps, code mappings and key templates.

Every value taken from config travels as a bound parameter; only validated snake_case column
names are written into SQL text. Parameter names carry a prefix so several providers' SQL can
be combined in one statement.
"""

from __future__ import annotations

from stars_assets.lib.providers import CodeMapping, TimestampSpec, key_template_parts


def timestamp_utc(spec: TimestampSpec, prefix: str, params: dict) -> str:
    """A naive UTC TIMESTAMP, or NULL when the text does not parse."""
    columns = [f"b.{c}" for c in spec.columns]
    text = columns[0] if len(columns) == 1 else f"concat_ws(' ', {', '.join(columns)})"
    if spec.format == "epoch_ms":
        return f"epoch_ms(try_cast({text} AS BIGINT))"
    if spec.format == "iso8601":
        return f"timezone('UTC', try_cast({text} AS TIMESTAMPTZ))"
    if spec.format == "hl7":
        # HL7 DTM with an offset (YYYYMMDDHHMMSS+hhmm); vendors here always send the offset.
        return f"timezone('UTC', try_strptime({text}, '%Y%m%d%H%M%S%z'))"
    params[f"{prefix}_format"] = spec.format
    params[f"{prefix}_zone"] = spec.timezone
    # A local wall-clock time: attach the vendor's zone (daylight saving included), then UTC.
    return f"timezone('UTC', timezone(${prefix}_zone, try_strptime({text}, ${prefix}_format)))"


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
