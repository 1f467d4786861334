"""Writing the lake: replace exactly the given partitions of a table in one Delta commit.

Rows stream from DuckDB to Delta as Arrow record batches. Each partition's fingerprint (row count, an
order-independent hash of its rows, and the column names and types) is computed inside DuckDB and
recorded in the commit's metadata; a partition whose fingerprint is unchanged is not rewritten, and
when none changed no commit is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Schema, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from stars_assets.lib.lake.errors import IncompatibleSchemaError
from stars_assets.lib.lake.tables import (
    META_CONTAINS_PHI,
    META_FINGERPRINTS,
    META_PARTITIONS,
    META_ROWS,
    META_SOURCE,
    WHOLE_TABLE,
    arrow_dataset,
    latest_commit_value,
    table_uri,
)
from stars_assets.lib.warehouse import duckdb_setting

# The fingerprint of a partition with no rows (in the warehouse, or never published).
EMPTY = "0"
# Rows per Arrow batch handed to delta-rs. It takes a day's rows faster than it writes them and holds the backlog (the
# process grows while DuckDB hands rows over, shrinks while delta-rs finishes); small batches keep the backlog small.
# A full day of silver outreach events, side by side: peak 5.0-5.7 GB with 16,384 rows, 8.2-8.5 GB with a million, in
# the same time (40-46 s) and the same files (delta-rs gathers its own row groups).
BATCH_ROWS = 16_384
# DuckDB threads that produce those batches. One thread still outpaces delta-rs, so the backlog remains, but it
# grows more slowly: a full day of silver outreach events published alone, the two alternated, peaked at 3.50, 3.57
# and 3.65 GB with one thread, 5.02 and 4.15 GB with two, in the same 20-24 s (delta-rs encodes the Parquet).
HANDOVER_THREADS = 1

FINGERPRINT_SQL = """
SELECT {partition} AS partition, count(*) AS rows, CAST(sum(hash(t)) AS VARCHAR) AS digest
FROM ({source}) AS t {where}
GROUP BY 1
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _filter(partition_column: str | None) -> str:
    return "" if partition_column is None else f"WHERE {_quote(partition_column)} IN (SELECT unnest($lake_partitions))"


def _columns(con: duckdb.DuckDBPyConnection, source: str, params: dict) -> list[tuple[str, str]]:
    return [(name, type_) for name, type_, *_ in con.execute(f"DESCRIBE SELECT * FROM ({source}) AS t", params).fetchall()]


def fingerprints(
    con: duckdb.DuckDBPyConnection,
    source: str,
    *,
    params: dict | None = None,
    partition_column: str | None = None,
    partitions: Sequence[date | str] = (),
) -> dict[str, tuple[int, str]]:
    """{partition: (rows, fingerprint)} for the requested partitions of a query (the whole result when unpartitioned)."""
    schema = hashlib.md5(repr(_columns(con, source, params or {})).encode()).hexdigest()[:12]
    params = {**(params or {}), **({"lake_partitions": list(partitions)} if partition_column else {})}
    partition = _literal(WHOLE_TABLE) if partition_column is None else f"CAST({_quote(partition_column)} AS VARCHAR)"
    found = {
        key: (rows, f"{rows}:{digest}:{schema}")
        for key, rows, digest in con.execute(
            FINGERPRINT_SQL.format(partition=partition, source=source, where=_filter(partition_column)), params
        ).fetchall()
    }
    requested = [WHOLE_TABLE] if partition_column is None else [str(p) for p in partitions]
    return {key: found.get(key, (0, EMPTY)) for key in requested}


def check_compatible(existing: Schema, incoming: pa.Schema, name: str) -> list[str]:
    """Columns the incoming rows add (merged as nullable). Raises on a changed type or a removed column."""
    old = {f.name: repr(f.type) for f in existing.fields}
    new = {f.name: repr(f.type) for f in Schema.from_arrow(incoming).fields}
    for column, type_ in old.items():
        if column not in new:
            raise IncompatibleSchemaError(
                f"{name}: column {column!r} ({type_}) is in the lake table but no longer in the warehouse; "
                "dropping a column is an incompatible change (publish under a new table name)"
            )
        if new[column] != type_:
            raise IncompatibleSchemaError(
                f"{name}: column {column!r} changed type from {type_} to {new[column]}; "
                "only added nullable columns merge into a lake table"
            )
    return [column for column in new if column not in old]


@dataclass(frozen=True)
class PublishResult:
    layer: str
    table: str
    uri: str
    version: int  # the table's version after the call
    committed: bool
    partitions_written: list[str]
    partitions_unchanged: list[str]
    rows: dict[str, int]  # rows per requested partition, equal in the warehouse and the lake after the call
    fingerprints: dict[str, str]  # per requested partition, of the warehouse's rows
    columns_added: list[str] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return sum(self.rows[p] for p in self.partitions_written)


def publish_query(
    con: duckdb.DuckDBPyConnection,
    source: str,
    layer: str,
    table: str,
    *,
    contains_phi: bool,
    params: dict | None = None,
    partition_column: str | None = None,
    partitions: Sequence[date | str] = (),
    source_name: str | None = None,
    commit_metadata: dict[str, str] | None = None,
    root: str | None = None,
    unique_columns: Sequence[str] = (),
) -> PublishResult:
    """Make the lake table's `partitions` (the whole table when `partition_column` is None) equal to the rows of
    `source` (a SELECT, with `params` bound) in those partitions, in at most one Delta commit. `unique_columns`
    hold a different value on (nearly) every row: written without a dictionary (a full day of silver outreach
    events published in 39 s instead of 50 s, and read back for the check in 15 s instead of 22 s)."""
    uri = table_uri(layer, table, root)
    name = f"{layer}.{table}"
    current = fingerprints(con, source, params=params, partition_column=partition_column, partitions=partitions)
    try:
        delta = DeltaTable(uri)
    except TableNotFoundError:
        delta = None
    previous = json.loads(latest_commit_value(delta, META_FINGERPRINTS) or "{}") if delta else {}
    changed = [p for p, (_, fingerprint) in current.items() if previous.get(p, EMPTY) != fingerprint]
    rows = {p: count for p, (count, _) in current.items()}
    digests = {p: fingerprint for p, (_, fingerprint) in current.items()}
    unchanged = [p for p in current if p not in changed]
    if not changed:
        return PublishResult(layer, table, uri, delta.version() if delta else -1, False, [], unchanged, rows, digests)

    query_params = dict(params or {})
    if partition_column is not None:
        query_params["lake_partitions"] = [p for p in partitions if str(p) in changed]
    after = {**previous, **{p: current[p][1] for p in changed}}
    metadata = {
        META_PARTITIONS: json.dumps(changed),
        META_ROWS: json.dumps({p: rows[p] for p in changed}),
        META_FINGERPRINTS: json.dumps({p: f for p, f in sorted(after.items()) if f != EMPTY}),
        META_CONTAINS_PHI: "true" if contains_phi else "false",
        META_SOURCE: source_name or name,
        **(commit_metadata or {}),
    }
    predicate = None
    if delta is not None and partition_column is not None:
        predicate = f"{_quote(partition_column)} IN ({', '.join(_literal(p) for p in changed)})"
    with duckdb_setting(con, "threads", HANDOVER_THREADS):
        relation = con.sql(f"SELECT * FROM ({source}) AS t {_filter(partition_column)}", params=query_params)
        with relation.to_arrow_reader(BATCH_ROWS) as reader:  # closed (and DuckDB's result freed) even if the write fails
            added = check_compatible(delta.schema(), reader.schema, name) if delta else []
            write_deltalake(
                uri,
                reader,
                mode="overwrite",
                predicate=predicate,
                schema_mode="merge" if delta else None,
                partition_by=[partition_column] if partition_column else None,
                name=None if delta else name,
                description=None
                if delta
                else f"{name} published from the warehouse; contains PHI: {'yes' if contains_phi else 'no'}",
                commit_properties=CommitProperties(custom_metadata=metadata),
                writer_properties=WriterProperties(
                    column_properties={c: ColumnProperties(dictionary_enabled=False) for c in unique_columns}
                )
                if unique_columns
                else None,
            )
    return PublishResult(layer, table, uri, DeltaTable(uri).version(), True, changed, unchanged, rows, digests, added)


LAKE_ROWS_VIEW = "lake_rows_under_check"
# How far Arrow reads ahead of DuckDB when the lake's rows are read back. Arrow's default (four files, sixteen batches)
# held about 2 GB more for a full day of silver outreach events, on top of DuckDB's cache of the warehouse rows just
# fingerprinted: read back alone after them, the process peaked at 4.25 and 4.26 GB by default, 3.16 and 3.17 GB
# with this, in 11.1-11.6 s against 12.3-12.4 s.
READ_BACK_READAHEAD = {"fragment_readahead": 1, "batch_readahead": 4}


def lake_fingerprints(
    con: duckdb.DuckDBPyConnection,
    source: str,
    delta: DeltaTable,
    *,
    params: dict | None = None,
    partition_column: str | None = None,
    partitions: Sequence[date | str] = (),
) -> dict[str, tuple[int, str]]:
    """Fingerprints of the lake table's rows in the requested partitions, computed exactly as for the warehouse's
    `source`: its columns, in its order, cast back to its types (Delta stores HUGEINT as decimal, for example)."""
    columns = _columns(con, source, params or {})
    wanted = pads.field(partition_column).isin(list(partitions)) if partition_column else None
    con.register(LAKE_ROWS_VIEW, arrow_dataset(delta).scanner(filter=wanted, **READ_BACK_READAHEAD))
    try:
        as_warehouse = (
            "SELECT " + ", ".join(f"CAST({_quote(c)} AS {t}) AS {_quote(c)}" for c, t in columns) + f" FROM {LAKE_ROWS_VIEW}"
        )
        return fingerprints(con, as_warehouse, partition_column=partition_column, partitions=partitions)
    finally:
        con.unregister(LAKE_ROWS_VIEW)
