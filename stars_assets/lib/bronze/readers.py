"""Format readers: one delivered file into a DuckDB staging table, plus its rejected rows.

Every reader returns a `StagedFile` whose `source` is a SELECT (with its bound parameters) of the
file's good rows: the dataset's bronze columns (text, as delivered), `_extra` (JSON of columns
the config does not declare, or NULL) and `_source_row`; and leaves a temporary relation
  <stage>_rejects  source_row, reason, detail, raw_text of rows it could not use
on the connection. A file that cannot be used at all raises `FileRejected` with a reason code.
The SELECT reads what the reader staged while parsing (or the file itself, for Parquet), so the
caller's INSERT into bronze is the only copy of the rows: each file is parsed once, written once.

Names from files (headers, JSON keys) never reach SQL text: delimited columns are read by
position under names we choose, and undeclared names travel as bound parameters.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from stars_assets.lib.providers import Dataset, ProviderConfig

# Longest delimited line accepted; longer lines are rejected rather than failing the file.
MAX_LINE_BYTES = 4_000_000
_SOURCE_PATH_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


class FileRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class StagedFile:
    stage: str
    rows: int
    rejected_rows: int
    extra_columns: tuple[str, ...]
    # The file's good rows: a SELECT of the bronze columns, `_extra` and `_source_row`, with its
    # bound parameters (vendor names from the file travel here, never in the SQL text).
    select: str = ""
    params: dict = field(default_factory=dict)

    @property
    def source(self) -> tuple[str, dict]:
        return (self.select or f"SELECT * FROM {self.stage}"), self.params


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stage_file(con: duckdb.DuckDBPyConnection, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    readers = {
        "delimited": _stage_delimited,
        "jsonl": _stage_jsonl,
        "hl7v2_siu": _stage_hl7,
        "fhir_bundle": _stage_fhir,
        "parquet": _stage_parquet,
    }
    return readers[provider.format](con, provider, dataset, path, stage)


def _compression(provider: ProviderConfig) -> str:
    return "gzip" if provider.compression == "gzip" else "none"


def _open_text(provider: ProviderConfig, path: Path):
    raw = gzip.open(path, "rb") if provider.compression == "gzip" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")


def _read_header(provider: ProviderConfig, path: Path) -> list[str]:
    try:
        with _open_text(provider, path) as handle:
            line = handle.readline()
    except UnicodeDecodeError as exc:
        raise FileRejected("wrong_encoding", f"file is not UTF-8 near its start: {exc.reason}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected("truncated_gzip" if provider.compression == "gzip" else "unreadable_file", str(exc)) from exc
    if not line.strip():
        raise FileRejected("empty_file", "no header line")
    quoting = {"quotechar": provider.quote} if provider.quote else {"quoting": csv.QUOTE_NONE}
    return next(csv.reader([line.rstrip("\r\n")], delimiter=provider.delimiter, **quoting))


def _check_required(dataset: Dataset, present: set[str]) -> None:
    missing = [c.source for c in dataset.columns if c.required and c.source not in present]
    if missing:
        raise FileRejected("missing_required_column", f"missing {', '.join(missing)}")


def _create_empty_rejects(con: duckdb.DuckDBPyConnection, stage: str) -> None:
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {stage}_rejects "
        "(source_row BIGINT, reason VARCHAR, detail VARCHAR, raw_text VARCHAR)"
    )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _staged(con, stage: str, extra: tuple[str, ...]) -> StagedFile:
    return StagedFile(stage, _count(con, stage), _count(con, f"{stage}_rejects"), extra)


def _stage_delimited(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    header = _read_header(provider, path)
    if len(set(header)) != len(header):
        raise FileRejected("malformed_header", "header repeats a column name")
    _check_required(dataset, set(header))
    position = {name: i for i, name in enumerate(header)}
    declared = {c.source for c in dataset.columns}
    extra = tuple(name for name in header if name not in declared)
    columns_sql = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {stage}_raw AS
            SELECT row_number() OVER () AS _rn, *
            FROM read_csv($path, delim = $delim, quote = $quote, escape = $quote, header = true,
                          auto_detect = false, columns = {columns_sql}, compression = $compression,
                          max_line_size = {MAX_LINE_BYTES}, store_rejects = true,
                          rejects_table = '{stage}_rej', rejects_scan = '{stage}_scan')
            """,
            {"path": str(path), "delim": provider.delimiter, "quote": provider.quote, "compression": _compression(provider)},
        )
    except duckdb.Error as exc:
        raise FileRejected("unreadable_file", str(exc).splitlines()[0]) from exc
    invalid_encoding = con.execute(
        f"SELECT count(*), min(line) FROM {stage}_rej WHERE error_type = 'INVALID ENCODING'"
    ).fetchone()
    if invalid_encoding[0]:
        raise FileRejected("wrong_encoding", f"{invalid_encoding[0]} line(s) are not UTF-8, first at line {invalid_encoding[1]}")

    select_declared = ", ".join(
        (f"c{position[c.source]}" if c.source in position else "CAST(NULL AS VARCHAR)") + f" AS {c.column}"
        for c in dataset.columns
    )
    extra_sql = (
        "to_json(map($extra_names, [" + ", ".join(f"c{position[n]}" for n in extra) + "]))" if extra else "CAST(NULL AS VARCHAR)"
    )
    # Rejected lines shift the physical line number of every later good row: map the k-th good
    # row to its line through the count of rejected lines before it (header is line 1).
    select = f"""
        WITH rejected AS (
            SELECT line, row_number() OVER (ORDER BY line) AS j FROM (SELECT DISTINCT line FROM {stage}_rej)
        ), shift AS (
            SELECT line - j - 1 AS good_rows_before, max(j) AS j FROM rejected GROUP BY 1
        )
        SELECT {select_declared}, {extra_sql} AS _extra, raw._rn + 1 + coalesce(shift.j, 0) AS _source_row
        FROM {stage}_raw AS raw ASOF LEFT JOIN shift ON raw._rn > shift.good_rows_before
        """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {stage}_rejects AS
        SELECT line AS source_row,
               -- A broken quote also miscounts the fields after it: name the cause, not the symptom.
               CASE WHEN bool_or(error_type = 'UNQUOTED VALUE' OR error_type = 'UNTERMINATED QUOTE') THEN 'malformed_quoting'
                    WHEN bool_or(error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS')) THEN 'wrong_field_count'
                    WHEN bool_or(error_type = 'LINE SIZE OVER MAXIMUM') THEN 'line_too_long'
                    ELSE 'unparseable_row' END AS reason,
               min(error_type || ': ' || error_message) AS detail,
               any_value(csv_line) AS raw_text
        FROM {stage}_rej GROUP BY line
        """
    )
    return StagedFile(stage, _count(con, f"{stage}_raw"), _count(con, f"{stage}_rejects"), extra,
                      select, {"extra_names": list(extra)} if extra else {})


def _stage_jsonl(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    # Each physical line is one record: read lines whole, then parse JSON in SQL, so a bad line
    # is a rejected row with its line number rather than a failed file. Numbering the lines keeps
    # one thread on the file; parsing is a second statement that DuckDB spreads over all cores.
    # Every line is parsed once for its keys and once for all declared fields (one call), and
    # `_extra` is only built for the rare line that has undeclared keys.
    declared = [c.source for c in dataset.columns]
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {stage}_lines AS
            SELECT row_number() OVER () AS _source_row, raw
            FROM read_csv($path, columns = {{'raw': 'VARCHAR'}}, delim = chr(1), quote = '', escape = '',
                          header = false, auto_detect = false, compression = $compression,
                          max_line_size = {MAX_LINE_BYTES}, strict_mode = false)
            """,
            {"path": str(path), "compression": _compression(provider)},
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {stage}_parsed AS
            WITH keyed AS (
                SELECT _source_row, raw,
                       CASE WHEN json_valid(raw) AND json_type(raw) = 'OBJECT' THEN json_keys(raw) END AS keys
                FROM {stage}_lines
            ), checked AS (
                SELECT _source_row, raw, keys,
                       CASE WHEN keys IS NULL THEN 'malformed_json'
                            WHEN NOT list_has_all(keys, $required) THEN 'missing_required_field'
                       END AS reason
                FROM keyed
                WHERE keys IS NOT NULL OR trim(raw) <> ''  -- blank lines are skipped
            )
            SELECT _source_row, reason,
                   CASE WHEN reason IS NULL THEN json_extract_string(raw, $paths) END AS _values,
                   CASE WHEN reason IS NULL AND NOT list_has_all($declared, keys)
                        THEN nullif(json_merge_patch(raw, $patch), '{{}}') END AS _extra,
                   CASE WHEN reason IS NOT NULL THEN raw END AS raw_text
            FROM checked
            """,
            {"required": [c.source for c in dataset.columns if c.required], "declared": declared,
             "paths": ["$." + json.dumps(source) for source in declared],
             "patch": json.dumps({source: None for source in declared})},
        )
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if "not utf-8" in message.lower() or "unicode" in message.lower() or "encoding" in message.lower():
            raise FileRejected("wrong_encoding", message) from exc
        reason = "truncated_gzip" if provider.compression == "gzip" else "unreadable_file"
        raise FileRejected(reason, message) from exc
    select_declared = ", ".join(f"_values[{i}] AS {c.column}" for i, c in enumerate(dataset.columns, start=1))
    select = f"SELECT {select_declared}, _extra, _source_row FROM {stage}_parsed WHERE reason IS NULL"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW {stage}_rejects AS
        SELECT _source_row AS source_row, reason,
               CASE reason WHEN 'malformed_json' THEN 'line is not a JSON object'
                           ELSE 'a required field is missing' END AS detail,
               raw_text
        FROM {stage}_parsed WHERE reason IS NOT NULL
        """
    )
    extra = tuple(
        row[0]
        for row in con.execute(
            f"SELECT DISTINCT unnest(json_keys(_extra)) FROM {stage}_parsed WHERE _extra IS NOT NULL ORDER BY 1"
        ).fetchall()
    )
    rows, rejected = con.execute(
        f"SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL) FROM {stage}_parsed"
    ).fetchone()
    return StagedFile(stage, rows, rejected, extra, select)


def _stage_parquet(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    try:
        present = {row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(path)}).fetchall()}
    except duckdb.Error as exc:
        raise FileRejected("unreadable_file", str(exc).splitlines()[0]) from exc
    _check_required(dataset, present)
    declared = {c.source for c in dataset.columns}
    extra = tuple(sorted(present - declared))
    select_declared = ", ".join(
        (f"CAST(t.{quote_identifier(c.source)} AS VARCHAR)" if c.source in present else "CAST(NULL AS VARCHAR)") + f" AS {c.column}"
        for c in dataset.columns
    )
    extra_sql = "nullif(json_merge_patch(to_json(t), $patch), '{}')" if extra else "CAST(NULL AS VARCHAR)"
    # The caller's INSERT reads the file itself: Parquet is columnar already, staging it would copy it.
    select = f"""
        SELECT {select_declared}, {extra_sql} AS _extra, t.file_row_number + 1 AS _source_row
        FROM read_parquet($path, file_row_number = true) AS t
        """
    params = {"path": str(path), **({"patch": json.dumps({c: None for c in declared | {"file_row_number"}})} if extra else {})}
    rows = con.execute("SELECT count(*) FROM read_parquet($path)", {"path": str(path)}).fetchone()[0]
    _create_empty_rejects(con, stage)
    return StagedFile(stage, rows, 0, extra, select, params)


def _load_records(con, dataset: Dataset, stage: str, records: list[tuple[int, dict[str, str | None], str]], rejects: list[tuple[int, str, str, str]]) -> None:
    """Stage parsed records (source_row, values by source path, raw text) from a Python parser."""
    columns = {c.column: [] for c in dataset.columns}
    source_rows = []
    for source_row, values, _raw in records:
        source_rows.append(source_row)
        for c in dataset.columns:
            columns[c.column].append(values.get(c.source))
    table = pa.table(
        {**{k: pa.array(v, pa.string()) for k, v in columns.items()},
         "_extra": pa.array([None] * len(source_rows), pa.string()),
         "_source_row": pa.array(source_rows, pa.int64())}
    )
    con.register(f"{stage}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {stage}_arrow")
    con.unregister(f"{stage}_arrow")
    reject_table = pa.table(
        {"source_row": pa.array([r[0] for r in rejects], pa.int64()),
         "reason": pa.array([r[1] for r in rejects], pa.string()),
         "detail": pa.array([r[2] for r in rejects], pa.string()),
         "raw_text": pa.array([r[3] for r in rejects], pa.string())}
    )
    con.register(f"{stage}_rej_arrow", reject_table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage}_rejects AS SELECT * FROM {stage}_rej_arrow")
    con.unregister(f"{stage}_rej_arrow")


def _accept(number: int, values: dict[str, str | None], raw: str, required: list[str], records: list, rejects: list) -> None:
    """A parsed message or resource is a record when every required field has a value."""
    missing = [p for p in required if values[p] is None]
    if missing:
        rejects.append((number, "missing_required_field", f"missing {', '.join(missing)}", raw))
    else:
        records.append((number, values, raw))


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise FileRejected("empty_file", "no content")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected("wrong_encoding", f"not UTF-8 at byte {exc.start}") from exc


def hl7_field(segments: dict[str, list[str]], path: str) -> str | None:
    """Value at an HL7 v2 path such as 'SCH-11.4' (segment, field, optional component)."""
    segment_id, _, rest = path.partition("-")
    field_text, _, component_text = rest.partition(".")
    fields = segments.get(segment_id)
    if fields is None:
        return None
    # MSH-1 is the field separator itself, so MSH field n sits one place earlier.
    index = int(field_text) - 1 if segment_id == "MSH" else int(field_text)
    if index >= len(fields):
        return None
    value = fields[index]
    if component_text:
        components = value.split("^")
        position = int(component_text) - 1
        value = components[position] if position < len(components) else ""
    return value or None


def _stage_hl7(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    text = _read_utf8(path)
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    messages: list[list[str]] = []
    for line in lines:
        if line.startswith("MSH|") or not messages:
            messages.append([])
        messages[-1].append(line)
    records, rejects = [], []
    required = [c.source for c in dataset.columns if c.required]
    for number, segment_lines in enumerate(messages, start=1):
        raw = "\r".join(segment_lines)
        if not segment_lines[0].startswith("MSH|"):
            rejects.append((number, "malformed_message", "message does not start with MSH", raw))
            continue
        segments: dict[str, list[str]] = {}
        for line in segment_lines:
            fields = line.split("|")
            segments.setdefault(fields[0], fields)
        _accept(number, {c.source: hl7_field(segments, c.source) for c in dataset.columns}, raw, required, records, rejects)
    _load_records(con, dataset, stage, records, rejects)
    return _staged(con, stage, ())


def json_path_value(document: dict, path: str) -> str | None:
    """Value at a dotted path with optional list indexes, e.g. 'reasonCode[0].coding[0].code'."""
    node = document
    for step in path.split("."):
        match = _SOURCE_PATH_STEP.match(step)
        if match is None or not isinstance(node, dict):
            return None
        node = node.get(match.group(1))
        if match.group(2) is not None:
            index = int(match.group(2))
            node = node[index] if isinstance(node, list) and index < len(node) else None
        if node is None:
            return None
    if isinstance(node, (dict, list)):
        return json.dumps(node, sort_keys=True)
    return str(node)


def _stage_fhir(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    text = _read_utf8(path)
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRejected("malformed_json", f"not JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FileRejected("malformed_bundle", "top level is not a FHIR Bundle")
    required = [c.source for c in dataset.columns if c.required]
    records, rejects = [], []
    for number, entry in enumerate(bundle.get("entry") or [], start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        raw = json.dumps(entry, sort_keys=True)
        if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
            rejects.append((number, "malformed_resource", "entry is not an Appointment resource", raw))
            continue
        _accept(number, {c.source: json_path_value(resource, c.source) for c in dataset.columns}, raw, required, records, rejects)
    _load_records(con, dataset, stage, records, rejects)
    return _staged(con, stage, ())
