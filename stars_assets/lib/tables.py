"""A table defined once: its columns (name, DuckDB type, description, PHI, nullable), partition
column and primary key. The DuckDB DDL, the Dagster column schema (defs/schemas.py), the pandera
contract's columns and dtypes (lib/silver/contracts.py) and which values every preview and log
masks (lib/masking.py) are all derived from these specs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date
from typing import Annotated, get_args, get_origin, get_type_hints


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type
    description: str = ""
    nullable: bool = True
    # PHI: never shown in clear in metadata, logs or alerts. An identifier (member id, MBI, vendor
    # reference) keeps its last two characters so rows can be told apart; other PHI (birth dates,
    # diagnoses) is hidden whole.
    phi: bool = False
    identifier: bool = False
    # A vocabulary column's allowed values: its contract checks them (see `coded`).
    values: tuple[str, ...] = ()
    # (Nearly) every row holds a different value: stored for that (see `unique_text`), and written to the lake
    # without a Parquet dictionary, which such a column only fills and then abandons.
    unique: bool = False
    # DuckDB's storage compression for the column, when not DuckDB's own choice (see `unique_text`).
    compression: str | None = None
    # SQL over the table's row: the value of rows written before the column existed (see `TableSpec.columns_to_add`).
    backfill: str | None = None

    @property
    def is_phi(self) -> bool:
        return self.phi or self.identifier

    @property
    def definition(self) -> str:
        """The column as CREATE TABLE and ADD COLUMN declare it."""
        return f"{self.name} {self.type}" + (f" USING COMPRESSION {self.compression}" if self.compression else "")


# Storage compression for a column whose every value is different (a key, an md5 in hex): DuckDB's
# default string compression (a dictionary, then FSST) finds nothing to share and is its slowest
# choice there. Measured on 8 million rows of two md5 columns: 15.2 s and 291 MB by default, 10.5 s
# and 345 MB with zstd, 8.3 s and 584 MB uncompressed.
UNIQUE_TEXT_COMPRESSION = "zstd"


# A column of unique values that is also fetched at scattered rows (a correction's duplicates are looked up
# in the window's history): zstd and DuckDB's default both decompress a block for each value fetched. Measured on
# 28 million rows of silver's event_id and record_hash: written in 11.2 s uncompressed, 15.2 s in zstd, 25.3 s by
# default; a 1% lookup 0.75 s, 1.9 s and 2.1 s; twice the space of the default (about 500 MB more a column).
LOOKUP_TEXT_COMPRESSION = "uncompressed"


def unique_text(name: str, description: str, nullable: bool = True, looked_up: bool = False) -> Column:
    """A VARCHAR column of values that are (almost) all different, stored with UNIQUE_TEXT_COMPRESSION
    (LOOKUP_TEXT_COMPRESSION when `looked_up`: its values are fetched at scattered rows)."""
    compression = LOOKUP_TEXT_COMPRESSION if looked_up else UNIQUE_TEXT_COMPRESSION
    return Column(name, "VARCHAR", description, nullable=nullable, unique=True, compression=compression)


def coded(name: str, values: Iterable[str], nullable: bool = False) -> Column:
    """A VARCHAR column holding codes of a vocabulary (lib/vocabulary.py): described by its codes, checked against them."""
    values = tuple(values)
    return Column(name, "VARCHAR", ", ".join(values), nullable=nullable, values=values)


def member_id(description: str = "internal member id", nullable: bool = False) -> Column:
    return Column("member_id", "VARCHAR", description, nullable=nullable, identifier=True)


def lineage(row_description: str = "row number in the source file") -> tuple[Column, ...]:
    """The silver columns that point back to the bronze row a record came from."""
    return (
        Column("source_file", "VARCHAR", "landing file, relative to the landing root", nullable=False),
        Column("source_row", "BIGINT", row_description, nullable=False),
    )


@dataclass(frozen=True)
class TableSpec:
    """A warehouse table: its columns in order, the column it is partitioned by, its key."""

    qualified_name: str  # schema.table
    description: str
    columns: tuple[Column, ...]
    partition_column: str | None = None
    primary_key: tuple[str, ...] = ()
    # Whether DuckDB enforces the key (an upsert needs it); otherwise the contract checks it.
    key_enforced: bool = False

    def __post_init__(self) -> None:
        names = self.column_names
        if len(set(names)) != len(names):
            raise ValueError(f"{self.qualified_name}: a column name repeats")
        for name in (*self.primary_key, *([self.partition_column] if self.partition_column else [])):
            if name not in names:
                raise ValueError(f"{self.qualified_name}: {name} is not a column")

    @property
    def schema(self) -> str:
        return self.qualified_name.split(".")[0]

    @property
    def name(self) -> str:
        return self.qualified_name.split(".")[1]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def unique_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.unique]

    @property
    def phi_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.is_phi)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def ddl(self, replace: bool = False) -> str:
        """CREATE SCHEMA and CREATE TABLE (IF NOT EXISTS, or OR REPLACE) for this table."""
        body = ",\n    ".join(c.definition for c in self.columns)
        if self.primary_key and self.key_enforced:
            body += f",\n    PRIMARY KEY ({', '.join(self.primary_key)})"
        create = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
        return f"CREATE SCHEMA IF NOT EXISTS {self.schema};\n{create} {self.qualified_name} (\n    {body}\n);"

    def columns_to_add(self, present: Iterable[str]) -> list[str]:
        """The statements that bring a table an older release created, holding the columns `present`, up to the spec:
        each missing column added, and filled by its `backfill` where it has one."""
        present = set(present)
        statements = []
        for c in self.columns:
            if c.name not in present:
                statements.append(f"ALTER TABLE {self.qualified_name} ADD COLUMN {c.definition}")
                if c.backfill:
                    statements.append(f"UPDATE {self.qualified_name} SET {c.name} = {c.backfill}")
        return statements


def ddl(*specs: TableSpec) -> str:
    return "\n".join(spec.ddl() for spec in specs)


# The leading columns of the weekly per-contract model tables (model.measure_levers, model.contract_predictions).
AS_OF_WEEK_END = Column("as_of_week_end", "DATE", "the Saturday the snapshot is as of", nullable=False)
PLAN_CONTRACT_ID = Column("contract_id", "VARCHAR", "the plan's CMS contract number", nullable=False)


def weekly_contract_table(qualified_name: str, description: str, key: str, columns: Iterable[Column]) -> TableSpec:
    """A weekly per-contract model table: one row per week end, plan contract and `key`, partitioned by week end.
    `columns` follow as_of_week_end and start with contract_id."""
    return TableSpec(
        qualified_name,
        description,
        (AS_OF_WEEK_END, *columns),
        partition_column="as_of_week_end",
        primary_key=("as_of_week_end", PLAN_CONTRACT_ID.name, key),
    )


_DUCKDB_TYPES = {str: "VARCHAR", float: "DOUBLE", int: "INTEGER", bool: "BOOLEAN", date: "DATE"}


def row_columns(row_type: type) -> tuple[Column, ...]:
    """The columns of a dataclass row type whose fields read `name: Annotated[type, "description"]`: the DuckDB type
    follows the Python type, and a field is nullable only where it is typed `... | None`."""
    hints = get_type_hints(row_type, include_extras=True)
    columns = []
    for field in fields(row_type):
        annotated = hints[field.name]
        python_type, description = get_args(annotated) if get_origin(annotated) is Annotated else (annotated, "")
        optional = type(None) in get_args(python_type)
        if optional:
            (python_type,) = (arg for arg in get_args(python_type) if arg is not type(None))
        columns.append(Column(field.name, _DUCKDB_TYPES[python_type], description, nullable=optional))
    return tuple(columns)
