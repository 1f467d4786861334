"""Format readers: one delivered file into a DuckDB staging table, plus its rejected rows.

Every reader returns a `StagedFile` whose `source` is a SELECT (with its bound parameters) of the
file's good rows: the dataset's bronze columns (text, as delivered), `_extra` (JSON of columns
the config does not declare, or NULL) and `_source_row`; and leaves a temporary relation
  <stage>_rejects  source_row, reason, detail, raw_text of rows it could not use
on the connection. A file that cannot be used at all raises `FileRejected` with a reason code.
Line formats also report the physical lines they account for (rows, rejected rows, skipped
header and blank lines), which the loader checks against the file's own line count.

Encodings: a line (message, entry) that is not valid UTF-8 is a rejected row (`invalid_encoding`);
when more than WRONG_ENCODING_SHARE of a file's rows are, the file is in another encoding and is
rejected whole (`wrong_encoding`), unless the provider declares a `fallback_encoding`: then any
file that is not valid UTF-8 is decoded byte run by byte run, valid UTF-8 as UTF-8 and the rest
in the fallback encoding, and loaded with a flag.
The SELECT reads what the reader staged while parsing (or the file itself, for Parquet), so the
caller's INSERT into bronze is the only copy of the rows: each file is parsed once, written once.

Names from files (headers, JSON keys) never reach SQL text: delimited columns are read by
position under names we choose, and undeclared names travel as bound parameters.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import json
import re
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from stars_assets.lib.bronze.landing import MAX_DOCUMENT_BYTES, MAX_LINE_BYTES
from stars_assets.lib.providers import Dataset, ProviderConfig

_SOURCE_PATH_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")
# Above this share of undecodable rows a file is taken to be written in another encoding.
WRONG_ENCODING_SHARE = 0.1
# Deepest nesting accepted in a JSON document (FHIR resources nest a dozen levels at most).
MAX_JSON_DEPTH = 64
# HL7 MLLP framing: start block, end block (followed by a carriage return).
MLLP_BYTES = ("\x0b", "\x1c")
_BINARY = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f]")  # control bytes no text header holds
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"


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
    # Line formats: physical lines accounted for (rows, rejected rows and their lines, header and
    # blank lines), of which skipped (header, blank); the last line number accounted for.
    lines_accounted: int | None = None
    lines_skipped: int = 0
    last_line: int = 0
    flag: tuple[str, str] | None = None  # (reason, detail) of a file loaded with a caveat

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
    reader = readers[provider.format]
    try:
        return reader(con, provider, dataset, path, stage)
    except FileRejected as rejected:
        if rejected.reason != "wrong_encoding" or provider.fallback_encoding is None or provider.format == "parquet":
            raise
    drop_stage(con, stage)
    with tempfile.TemporaryDirectory(prefix="stars-transcode-") as folder:
        utf8 = Path(folder) / "utf8.txt"
        _transcode(provider, path, utf8)
        staged = reader(con, provider.model_copy(update={"compression": "none", "fallback_encoding": None}), dataset, utf8, stage)
    return replace(
        staged, flag=("fallback_encoding", f"not valid UTF-8: bytes outside UTF-8 decoded as {provider.fallback_encoding}")
    )


def _fallback_handler(encoding: str) -> str:
    """A codec error handler that decodes the bytes UTF-8 refuses in the fallback encoding."""
    name = f"stars_fallback_{codecs.lookup(encoding).name}"
    try:
        codecs.lookup_error(name)
    except LookupError:

        def decode_in_fallback(error: UnicodeDecodeError):
            return error.object[error.start : error.end].decode(encoding), error.end

        codecs.register_error(name, decode_in_fallback)
    return name


def _transcode(provider: ProviderConfig, path: Path, target: Path) -> None:
    """Write the file as UTF-8: valid UTF-8 kept, other byte runs decoded in the fallback encoding."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors=_fallback_handler(provider.fallback_encoding))
    raw = gzip.open(path, "rb") if provider.compression == "gzip" else open(path, "rb")
    try:
        with raw, open(target, "w", encoding="utf-8", newline="") as out:
            for block in iter(lambda: raw.read(8 * 1024 * 1024), b""):
                out.write(decoder.decode(block))
            out.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise FileRejected("wrong_encoding", f"neither UTF-8 nor {provider.fallback_encoding}: {exc.reason}") from exc


def drop_stage(con: duckdb.DuckDBPyConnection, stage: str) -> None:
    """Drop one stage's temporary relations (`stage` and `stage_*`), and no other stage's."""
    mine = "(name = $s OR starts_with(name, $s || '_'))"
    for (name,) in con.execute(
        f"SELECT view_name AS name FROM duckdb_views() WHERE temporary AND NOT internal AND {mine}", {"s": stage}
    ).fetchall():
        con.execute(f"DROP VIEW IF EXISTS temp.main.{quote_identifier(name)}")
    for (name,) in con.execute(
        f"SELECT table_name AS name FROM duckdb_tables() WHERE temporary AND {mine}", {"s": stage}
    ).fetchall():
        con.execute(f"DROP TABLE IF EXISTS temp.main.{quote_identifier(name)}")


def _check_encoding(provider: ProviderConfig, undecodable: int, rows: int, first: int | None) -> None:
    """Reject the file as a whole when it is in another encoding (see the module's docstring)."""
    if undecodable and (provider.fallback_encoding is not None or undecodable > WRONG_ENCODING_SHARE * max(rows, 1)):
        raise FileRejected("wrong_encoding", f"{undecodable} of {rows} rows are not UTF-8, first at row {first}")


def _compression(provider: ProviderConfig) -> str:
    return "gzip" if provider.compression == "gzip" else "none"


def _read_header(provider: ProviderConfig, path: Path) -> list[str]:
    # Only the header line is decoded here: a bad byte in a later row is that row's problem.
    try:
        with gzip.open(path, "rb") if provider.compression == "gzip" else open(path, "rb") as handle:
            line = handle.readline(MAX_LINE_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected("wrong_encoding", f"the header is not UTF-8: {exc.reason}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise FileRejected("truncated_gzip" if provider.compression == "gzip" else "unreadable_file", str(exc)) from exc
    if not line.strip():
        raise FileRejected("empty_file", "no header line")
    if _BINARY.search(line.rstrip("\r\n")):
        raise FileRejected("wrong_encoding", "the header holds control bytes: binary content, not text")
    quoting = {"quotechar": provider.quote} if provider.quote else {"quoting": csv.QUOTE_NONE}
    return next(csv.reader([line.rstrip("\r\n")], delimiter=provider.delimiter, **quoting))


def _check_required(dataset: Dataset, present: set[str]) -> None:
    missing = [c.source for c in dataset.columns if c.required and c.source not in present]
    if missing:
        raise FileRejected("missing_required_column", f"missing {', '.join(missing)}")


def _create_empty_rejects(con: duckdb.DuckDBPyConnection, stage: str) -> None:
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {stage}_rejects (source_row BIGINT, reason VARCHAR, detail VARCHAR, raw_text VARCHAR)"
    )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _staged(con, stage: str, extra: tuple[str, ...]) -> StagedFile:
    return StagedFile(stage, _count(con, stage), _count(con, f"{stage}_rejects"), extra)


# Rejected records shift the physical line of every later good row: the k-th good row of the
# reader sits on its line k + 1 (header) + the lines of the rejected records before it. A rejected
# record spans more than one line when a quote was left open ({stage}_spans: line, span).
# The line numbers are found for the row numbers alone and joined to the rows by number: an ASOF join
# that carries every column sorts them all (a dialer day's 5 million rows, 10,210 of its records
# rejected, the loader alone: 22.7-23.6 s with the columns carried, 18.4-21.3 s joined by number).
LINE_NUMBERS_SQL = """
CREATE OR REPLACE TEMP TABLE {stage}_lines AS
WITH spans AS (
    SELECT line, span, sum(span) OVER (ORDER BY line) AS spanned FROM {stage}_spans
), shift AS (
    SELECT line - {first_line} - (spanned - span) AS good_rows_before, spanned FROM spans
)
SELECT raw._rn, raw._rn + {first_line} - 1 + coalesce(shift.spanned, 0) AS _source_row
FROM (SELECT _rn FROM {stage}_raw) AS raw ASOF LEFT JOIN shift ON raw._rn > shift.good_rows_before
"""


def _good_rows(con: duckdb.DuckDBPyConnection, stage: str, first_line: int, columns: str, shifted: bool) -> str:
    """The SELECT of a stage's good rows (`columns` over `raw`) with the physical line each sits on in the file:
    `first_line` is the first good row's line when no record before it was rejected; `shifted`: some record was
    (see {stage}_spans), else a row's line is its position. When shifted, the lines are first written to
    {stage}_lines, which drop_stage removes with the rest of the stage."""
    if not shifted:
        return f"SELECT {columns}, raw._rn + {first_line - 1} AS _source_row FROM {stage}_raw AS raw"
    con.execute(LINE_NUMBERS_SQL.format(stage=stage, first_line=first_line))
    return f"SELECT {columns}, lines._source_row FROM {stage}_raw AS raw JOIN {stage}_lines AS lines USING (_rn)"


DELIMITED_REJECTS_SQL = """
CREATE OR REPLACE TEMP TABLE {stage}_rejects AS
WITH errors AS (
    SELECT line, error_type, error_message,
           -- the reader reports a record from the end of the line before it
           ltrim(csv_line, chr(13) || chr(10)) AS raw_text
    FROM {stage}_rej
)
SELECT line AS source_row,
       CASE WHEN bool_or(error_type = 'INVALID ENCODING') THEN 'invalid_encoding'
            -- A broken quote also miscounts the fields after it: name the cause, not the symptom.
            WHEN bool_or(error_type = 'UNQUOTED VALUE' OR error_type = 'UNTERMINATED QUOTE') THEN 'malformed_quoting'
            WHEN bool_or(error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS')) THEN 'wrong_field_count'
            WHEN bool_or(error_type = 'LINE SIZE OVER MAXIMUM') THEN 'line_too_long'
            ELSE 'unparseable_row' END AS reason,
       min(error_type || ': ' || error_message) AS detail,
       any_value(raw_text) AS raw_text
FROM errors GROUP BY line
"""


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
    con.execute(DELIMITED_REJECTS_SQL.format(stage=stage))
    rows = _count(con, f"{stage}_raw")
    undecodable, first_bad = con.execute(
        f"SELECT count(*), min(source_row) FROM {stage}_rejects WHERE reason = 'invalid_encoding'"
    ).fetchone()
    _check_encoding(provider, undecodable, rows + _count(con, f"{stage}_rejects"), first_bad)
    recovered = _split_open_quotes(con, provider, stage, len(header))

    select_declared = ", ".join(
        (f"c{position[c.source]}" if c.source in position else "CAST(NULL AS VARCHAR)") + f" AS {c.column}"
        for c in dataset.columns
    )
    extra_sql = (
        "to_json(map($extra_names, [" + ", ".join(f"c{position[n]}" for n in extra) + "]))" if extra else "CAST(NULL AS VARCHAR)"
    )
    spanned = con.execute(f"SELECT coalesce(sum(span), 0) FROM {stage}_spans").fetchone()[0]
    select = _good_rows(con, stage, 2, f"{select_declared}, {extra_sql} AS _extra", shifted=spanned > 0)
    if recovered:
        select += f" UNION ALL SELECT {select_declared}, {extra_sql} AS _extra, _source_row FROM {stage}_recovered AS raw"
    accounted = 1 + rows + int(spanned)
    return StagedFile(
        stage,
        rows + recovered,
        _count(con, f"{stage}_rejects"),
        extra,
        select,
        {"extra_names": list(extra)} if extra else {},
        lines_accounted=accounted,
        lines_skipped=1,
        last_line=accounted,
    )


def _split_open_quotes(con, provider: ProviderConfig, stage: str, width: int) -> int:
    """A quote left open swallows the lines after it into one rejected record: only its own line
    stays rejected; each swallowed line is parsed on its own (loaded when whole, else rejected).
    Returns the number of rows recovered (staged in {stage}_recovered)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {stage}_spans AS
        SELECT source_row AS line, CAST(coalesce(len(regexp_split_to_array(rtrim(raw_text, chr(13) || chr(10)), '\r\n|\r|\n')), 1) AS BIGINT) AS span
        FROM {stage}_rejects""")
    swallowing = con.execute(
        f"SELECT r.source_row, r.raw_text FROM {stage}_rejects AS r JOIN {stage}_spans AS s ON s.line = r.source_row "
        "WHERE s.span > 1 ORDER BY 1"
    ).fetchall()
    recovered: list[tuple[int, list[str]]] = []
    rejected: list[tuple[int, str, str, str]] = []
    quoting = {"quotechar": provider.quote, "doublequote": True} if provider.quote else {"quoting": csv.QUOTE_NONE}
    for line, raw_text in swallowing:
        first, *rest = re.split(r"\r\n|\r|\n", raw_text.rstrip("\r\n"))
        con.execute(
            f"UPDATE {stage}_rejects SET raw_text = $raw, detail = 'a quote is left open on this line' WHERE source_row = $line",
            {"raw": first, "line": line},
        )
        for offset, piece in enumerate(rest, start=1):
            try:
                fields = next(csv.reader([piece], delimiter=provider.delimiter, strict=True, **quoting))
            except (csv.Error, StopIteration):
                rejected.append((line + offset, "malformed_quoting", "a quote is left open on this line", piece))
                continue
            if len(fields) != width:
                rejected.append((line + offset, "wrong_field_count", f"{len(fields)} fields, the header has {width}", piece))
            else:
                recovered.append((line + offset, fields))
    if rejected:
        table = pa.table(
            {
                "source_row": pa.array([r[0] for r in rejected], pa.int64()),
                "reason": pa.array([r[1] for r in rejected], pa.string()),
                "detail": pa.array([r[2] for r in rejected], pa.string()),
                "raw_text": pa.array([r[3] for r in rejected], pa.string()),
            }
        )
        con.register(f"{stage}_split_arrow", table)
        con.execute(f"INSERT INTO {stage}_rejects SELECT * FROM {stage}_split_arrow")
        con.unregister(f"{stage}_split_arrow")
    if recovered:
        table = pa.table(
            {
                "_source_row": pa.array([r[0] for r in recovered], pa.int64()),
                **{f"c{i}": pa.array([r[1][i] for r in recovered], pa.string()) for i in range(width)},
            }
        )
        con.register(f"{stage}_recovered_arrow", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {stage}_recovered AS SELECT * FROM {stage}_recovered_arrow")
        con.unregister(f"{stage}_recovered_arrow")
    return len(recovered)


# Parses numbered lines ({lines}: raw, _source_row, and {file} columns) into {stage}_parsed.
# A good line is parsed three times (json_valid, json_keys, json_extract_string for all declared fields at once);
# json_type only for the rare valid line without keys (json_keys gives [] for {} and for what is not an object),
# json_merge_patch only for the rare line with undeclared keys. Each step is a CTE level so nothing is computed twice (a filter on `keys` would be
# evaluated once in the filter and again in the projection), and a parser that can fail on a line runs only in a
# CASE branch that line reached (CASE keeps its order; AND may be reordered by the engine and fail on a bad line).
# The blank-line filter calls trim (which walks the whole line) only on lines that do not start with '{'.
# Keys are checked name by name with list_contains: list_has_all over a bound list costs as much as parsing the line.
JSONL_PARSE_SQL = """
CREATE OR REPLACE TEMP TABLE {stage}_parsed AS
WITH numbered AS ({lines}),
valid AS (
    SELECT {file} _source_row, raw, CASE WHEN json_valid(raw) THEN json_keys(raw) END AS keys
    FROM numbered
    WHERE starts_with(raw, '{{') OR trim(raw) <> ''  -- blank lines are skipped
), keyed AS (
    SELECT {file} _source_row, raw,
           CASE WHEN keys IS NULL THEN NULL WHEN len(keys) > 0 THEN keys WHEN json_type(raw) = 'OBJECT' THEN keys END AS keys
    FROM valid
), checked AS (
    SELECT {file} _source_row, raw, keys,
           CASE WHEN keys IS NULL THEN 'malformed_json'
                WHEN len(list_filter($required, lambda name: NOT list_contains(keys, name))) > 0 THEN 'missing_required_field'
           END AS reason
    FROM keyed
)
SELECT {file} _source_row, reason,
       CASE WHEN reason IS NULL THEN json_extract_string(raw, $paths) END AS _values,
       CASE WHEN reason IS NULL AND len(list_filter(keys, lambda name: NOT list_contains($declared, name))) > 0
            THEN nullif(json_merge_patch(raw, $patch), '{{}}') END AS _extra,
       CASE WHEN reason IS NOT NULL THEN raw END AS raw_text
FROM checked
"""

JSONL_REJECT_DETAIL_SQL = (
    "CASE reason WHEN 'malformed_json' THEN 'line is not a JSON object' ELSE 'a required field is missing' END"
)


def _jsonl_parse_params(dataset: Dataset) -> dict:
    declared = [c.source for c in dataset.columns]
    return {
        "required": [c.source for c in dataset.columns if c.required],
        "declared": declared,
        "paths": ["$." + json.dumps(source) for source in declared],
        "patch": json.dumps({source: None for source in declared}),
    }


@dataclass(frozen=True)
class StagedBatch:
    """Several JSON-lines files staged by one set of statements: `files` by the path read (each with
    its counts, as `_stage_jsonl` gives them); `{stage}_parsed` holds every file's lines with `_file`."""

    stage: str
    files: dict[str, StagedFile]

    def rows_select(self, dataset: Dataset) -> str:
        """The good rows of the files in the bound list $read (the paths read), with `_file`."""
        values = ", ".join(f"_values[{i}] AS {c.column}" for i, c in enumerate(dataset.columns, start=1))
        return f"SELECT _file, {values}, _extra, _source_row FROM {self.stage}_parsed WHERE reason IS NULL AND _file IN (SELECT unnest($read))"

    def rejects_select(self) -> str:
        return (
            f"SELECT _file, _source_row AS source_row, reason, {JSONL_REJECT_DETAIL_SQL} AS detail, raw_text "
            f"FROM {self.stage}_parsed WHERE reason IS NOT NULL AND _file IN (SELECT unnest($read))"
        )


def stage_jsonl_batch(con, provider: ProviderConfig, dataset: Dataset, paths: list[Path], stage: str) -> StagedBatch | None:
    """Read and parse many small JSON-lines files in a few statements instead of a few per file (a day of
    hourly files costs the statements of one). Lines are numbered per file from the scan's order, as
    `_stage_jsonl` numbers them. Returns None when the reader itself refused a line (too long, not UTF-8)
    or failed: the caller then stages the files one at a time, where each such line or file has its reason."""
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {stage}_raw AS
            SELECT filename AS _file, row_number() OVER () AS _rn, raw
            FROM read_csv($paths, columns = {{'raw': 'VARCHAR'}}, delim = chr(1), quote = '', escape = '',
                          header = false, auto_detect = false, compression = $compression, filename = true,
                          max_line_size = {MAX_LINE_BYTES}, strict_mode = false, store_rejects = true,
                          rejects_table = '{stage}_rej', rejects_scan = '{stage}_scan')
            """,
            {"paths": [str(p) for p in paths], "compression": _compression(provider)},
        )
        if con.execute(f"SELECT count(*) FROM {stage}_rej").fetchone()[0]:
            return None
        lines = f"SELECT _file, raw, _rn - min(_rn) OVER (PARTITION BY _file) + 1 AS _source_row FROM {stage}_raw"
        con.execute(JSONL_PARSE_SQL.format(stage=stage, lines=lines, file="_file,"), _jsonl_parse_params(dataset))
        counts = con.execute(
            f"""
            SELECT raw._file, raw.lines, coalesce(p.good, 0), coalesce(p.rejected, 0), coalesce(p.parsed, 0), p.extra
            FROM (SELECT _file, count(*) AS lines FROM {stage}_raw GROUP BY 1) AS raw
            LEFT JOIN (
                SELECT _file, count(*) FILTER (WHERE reason IS NULL) AS good, count(*) FILTER (WHERE reason IS NOT NULL) AS rejected,
                       count(*) AS parsed, list_sort(list_distinct(flatten(list(json_keys(_extra)) FILTER (WHERE _extra IS NOT NULL)))) AS extra
                FROM {stage}_parsed GROUP BY 1
            ) AS p USING (_file)
            """
        ).fetchall()
    except duckdb.Error:
        return None
    files = {
        file: StagedFile(
            stage, good, rejected, tuple(extra or ()), lines_accounted=lines, lines_skipped=lines - parsed, last_line=lines
        )
        for file, lines, good, rejected, parsed, extra in counts
    }
    return StagedBatch(stage, files)


def _stage_jsonl(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    # Each physical line is one record: read lines whole, then parse JSON in SQL, so a bad line
    # is a rejected row with its line number rather than a failed file. Numbering the lines keeps
    # one thread on the file; parsing is a second statement that DuckDB spreads over all cores.
    # Every line is parsed for its validity, its keys and all declared fields (one call each; see JSONL_PARSE_SQL), and
    # `_extra` is only built for the rare line that has undeclared keys. Lines the reader itself
    # refuses (too long, not UTF-8) are in its rejects table, with their line numbers.
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {stage}_raw AS
            SELECT row_number() OVER () AS _rn, raw
            FROM read_csv($path, columns = {{'raw': 'VARCHAR'}}, delim = chr(1), quote = '', escape = '',
                          header = false, auto_detect = false, compression = $compression,
                          max_line_size = {MAX_LINE_BYTES}, strict_mode = false, store_rejects = true,
                          rejects_table = '{stage}_rej', rejects_scan = '{stage}_scan')
            """,
            {"path": str(path), "compression": _compression(provider)},
        )
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {stage}_reader_rejects AS
            SELECT line AS source_row,
                   CASE WHEN bool_or(error_type = 'INVALID ENCODING') THEN 'invalid_encoding'
                        WHEN bool_or(error_type = 'LINE SIZE OVER MAXIMUM') THEN 'line_too_long'
                        ELSE 'unparseable_row' END AS reason,
                   min(error_type || ': ' || error_message) AS detail,
                   any_value(ltrim(csv_line, chr(13) || chr(10))) AS raw_text
            FROM {stage}_rej GROUP BY line""")
        # One statement for the counts: a file costs a few statements, so each one saved counts.
        rows, reader_rejects, undecodable, first_bad = con.execute(
            f"SELECT (SELECT count(*) FROM {stage}_raw), count(*), count(*) FILTER (WHERE reason = 'invalid_encoding'), "
            f"min(source_row) FILTER (WHERE reason = 'invalid_encoding') FROM {stage}_reader_rejects"
        ).fetchone()
        _check_encoding(provider, undecodable, rows + reader_rejects, first_bad)
        if reader_rejects:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {stage}_spans AS SELECT source_row AS line, CAST(1 AS BIGINT) AS span "
                f"FROM {stage}_reader_rejects"
            )
        lines = _good_rows(con, stage, 1, "raw", shifted=reader_rejects > 0)
        con.execute(
            JSONL_PARSE_SQL.format(stage=stage, lines=lines, file=""),
            _jsonl_parse_params(dataset),
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
        CREATE OR REPLACE TEMP TABLE {stage}_rejects AS
        SELECT _source_row AS source_row, reason, {JSONL_REJECT_DETAIL_SQL} AS detail, raw_text
        FROM {stage}_parsed WHERE reason IS NOT NULL
        UNION ALL SELECT * FROM {stage}_reader_rejects
        """
    )
    good, rejected, parsed, extra_keys = con.execute(
        f"SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL), count(*), "
        f"(SELECT list_sort(list_distinct(flatten(list(json_keys(_extra))))) FROM {stage}_parsed WHERE _extra IS NOT NULL) "
        f"FROM {stage}_parsed"
    ).fetchone()
    extra = tuple(extra_keys or ())
    blank = rows - parsed
    accounted = rows + reader_rejects
    return StagedFile(
        stage, good, rejected + reader_rejects, extra, select, lines_accounted=accounted, lines_skipped=blank, last_line=accounted
    )


def _stage_parquet(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    try:
        present = {row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(path)}).fetchall()}
    except duckdb.Error as exc:
        raise FileRejected("unreadable_file", str(exc).splitlines()[0]) from exc
    _check_required(dataset, present)
    declared = {c.source for c in dataset.columns}
    extra = tuple(sorted(present - declared))
    select_declared = ", ".join(
        (f"CAST(t.{quote_identifier(c.source)} AS VARCHAR)" if c.source in present else "CAST(NULL AS VARCHAR)")
        + f" AS {c.column}"
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


def _load_records(
    con,
    dataset: Dataset,
    stage: str,
    records: list[tuple[int, dict[str, str | None], str]],
    rejects: list[tuple[int, str, str, str]],
) -> None:
    """Stage parsed records (source_row, values by source path, raw text) from a Python parser."""
    columns = {c.column: [] for c in dataset.columns}
    source_rows = []
    for source_row, values, _raw in records:
        source_rows.append(source_row)
        for c in dataset.columns:
            columns[c.column].append(values.get(c.source))
    table = pa.table(
        {
            **{k: pa.array(v, pa.string()) for k, v in columns.items()},
            "_extra": pa.array([None] * len(source_rows), pa.string()),
            "_source_row": pa.array(source_rows, pa.int64()),
        }
    )
    con.register(f"{stage}_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {stage}_arrow")
    con.unregister(f"{stage}_arrow")
    reject_table = pa.table(
        {
            "source_row": pa.array([r[0] for r in rejects], pa.int64()),
            "reason": pa.array([r[1] for r in rejects], pa.string()),
            "detail": pa.array([r[2] for r in rejects], pa.string()),
            "raw_text": pa.array([r[3] for r in rejects], pa.string()),
        }
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


def _read_document(path: Path) -> str:
    """A whole-document file as text; bytes that are not UTF-8 are kept as lone surrogates
    (errors="surrogateescape") so that only the messages or entries holding them are rejected."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise FileRejected("file_too_large", f"{size} bytes; documents are read whole up to {MAX_DOCUMENT_BYTES} bytes")
    data = path.read_bytes()
    if not data.strip():
        raise FileRejected("empty_file", "no content")
    return data.decode("utf-8-sig", errors="surrogateescape")


def _undecodable(text: str) -> bool:
    return _UNDECODABLE.search(text) is not None


def _readable(text: str) -> str:
    """Raw text for the quarantine: undecodable bytes shown as U+FFFD."""
    return _UNDECODABLE.sub("\ufffd", text)


@dataclass(frozen=True)
class Hl7Separators:
    """The separators a message declares in MSH-1 and MSH-2 (defaults |^~\\&)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"

    @classmethod
    def of(cls, msh: str) -> Hl7Separators | None:
        """From a message's MSH segment; None when the declared separators are unusable."""
        if len(msh) < 5 or not msh.startswith("MSH"):
            return None
        field_sep = msh[3]
        encoding = msh[4:].split(field_sep, 1)[0]
        component = encoding[0] if len(encoding) > 0 else "^"
        repetition = encoding[1] if len(encoding) > 1 else "~"
        chosen = (field_sep, component, repetition)
        if len(set(chosen)) != 3 or any(c.isalnum() or c in "\r\n " for c in chosen):
            return None
        return cls(field_sep, component, repetition)


_HL7_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\[(\d+)=([^\]]*)\])?(?:\.(\d+))?$")


@functools.lru_cache(maxsize=256)
def _hl7_path(path: str) -> tuple | None:
    match = _HL7_PATH.match(path)
    return match.groups() if match else None


def hl7_field(segments: dict[str, list[str]], path: str, separators: Hl7Separators = Hl7Separators()) -> str | None:
    """Value at an HL7 v2 path such as 'SCH-11.4' (segment, field, optional component).

    'PID-3[5=MB].1' searches the field's repetitions for the first whose component 5 is MB (the
    identifier type) and takes its component 1; without such a repetition, the first one."""
    parsed = _hl7_path(path)
    if parsed is None:
        return None
    segment_id, field_text, where_component, where_value, component_text = parsed
    fields = segments.get(segment_id)
    if fields is None:
        return None
    # MSH-1 is the field separator itself, so MSH field n sits one place earlier.
    index = int(field_text) - 1 if segment_id == "MSH" else int(field_text)
    if index >= len(fields):
        return None
    value = fields[index]
    if not (segment_id == "MSH" and index == 1):  # MSH-2 holds the separators themselves
        repetitions = value.split(separators.repetition)
        value = repetitions[0]
        if where_component is not None:
            position = int(where_component) - 1
            for repetition in repetitions:
                components = repetition.split(separators.component)
                if position < len(components) and components[position] == where_value:
                    value = repetition
                    break
    if component_text:
        components = value.split(separators.component)
        position = int(component_text) - 1
        value = components[position] if position < len(components) else ""
    return value or None


def _stage_hl7(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    text = _read_document(path)
    for framing in MLLP_BYTES:  # MLLP wraps each message in <VT> ... <FS><CR>
        text = text.replace(framing, "")
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    messages: list[list[str]] = []
    for line in lines:
        if line.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    records, rejects = [], []
    required = [c.source for c in dataset.columns if c.required]
    any_undecodable = _undecodable(text)
    for number, segment_lines in enumerate(messages, start=1):
        raw = "\r".join(segment_lines)
        separators = Hl7Separators.of(segment_lines[0])
        if any_undecodable and _undecodable(raw):
            rejects.append((number, "invalid_encoding", "message is not valid UTF-8", _readable(raw)))
            continue
        if separators is None:
            reason = (
                "message does not start with MSH"
                if not segment_lines[0].startswith("MSH")
                else "MSH declares unusable separators"
            )
            rejects.append((number, "malformed_message", reason, raw))
            continue
        segments: dict[str, list[str]] = {}
        for line in segment_lines:
            fields = line.split(separators.field)
            segments.setdefault(fields[0], fields)
        _accept(
            number,
            {c.source: hl7_field(segments, c.source, separators) for c in dataset.columns},
            raw,
            required,
            records,
            rejects,
        )
    undecodable = [r[0] for r in rejects if r[1] == "invalid_encoding"]
    _check_encoding(provider, len(undecodable), len(messages), undecodable[0] if undecodable else None)
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


def _too_deep(document, limit: int) -> bool:
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return False


def _stage_fhir(con, provider: ProviderConfig, dataset: Dataset, path: Path, stage: str) -> StagedFile:
    text = _read_document(path)
    try:
        bundle = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRejected("malformed_json", f"not JSON at line {exc.lineno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise FileRejected("too_deeply_nested", f"JSON nested beyond what the parser handles (limit {MAX_JSON_DEPTH})") from exc
    if _too_deep(bundle, MAX_JSON_DEPTH):
        raise FileRejected("too_deeply_nested", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FileRejected("malformed_bundle", "top level is not a FHIR Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FileRejected("malformed_bundle", f"Bundle.entry is a {type(entries).__name__}, not a list")
    required = [c.source for c in dataset.columns if c.required]
    records, rejects = [], []
    any_undecodable = _undecodable(text)
    for number, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        raw = json.dumps(entry, sort_keys=True)
        if any_undecodable and _undecodable(json.dumps(entry, ensure_ascii=False)):
            rejects.append(
                (
                    number,
                    "invalid_encoding",
                    "entry is not valid UTF-8",
                    _readable(json.dumps(entry, sort_keys=True, ensure_ascii=False)),
                )
            )
            continue
        if not isinstance(resource, dict) or resource.get("resourceType") != "Appointment":
            rejects.append((number, "malformed_resource", "entry is not an Appointment resource", raw))
            continue
        _accept(number, {c.source: json_path_value(resource, c.source) for c in dataset.columns}, raw, required, records, rejects)
    undecodable = [r[0] for r in rejects if r[1] == "invalid_encoding"]
    _check_encoding(provider, len(undecodable), len(entries), undecodable[0] if undecodable else None)
    _load_records(con, dataset, stage, records, rejects)
    return _staged(con, stage, ())
