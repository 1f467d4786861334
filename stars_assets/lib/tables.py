"""A table defined once: its columns (name, DuckDB type, description, PHI, nullable), partition
column and primary key. The DuckDB DDL, the Dagster column schema (defs/schemas.py), the pandera
contract's columns and dtypes (lib/silver/contracts.py) and which values every preview and log
masks (lib/masking.py) are all derived from these specs.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def is_phi(self) -> bool:
        return self.phi or self.identifier


def member_id(description: str = "internal member id", nullable: bool = False) -> Column:
    return Column("member_id", "VARCHAR", description, nullable=nullable, identifier=True)


# The leading columns of the weekly per-contract model tables (model.measure_levers, model.contract_predictions),
# as (name, DuckDB type, description).
WEEKLY_CONTRACT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("as_of_week_end", "DATE", "the Saturday the snapshot is as of"),
    ("contract_id", "VARCHAR", "the plan's CMS contract number"),
)


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
    def phi_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.is_phi)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def ddl(self, replace: bool = False) -> str:
        """CREATE SCHEMA and CREATE TABLE (IF NOT EXISTS, or OR REPLACE) for this table."""
        body = ",\n    ".join(f"{c.name} {c.type}" for c in self.columns)
        if self.primary_key and self.key_enforced:
            body += f",\n    PRIMARY KEY ({', '.join(self.primary_key)})"
        create = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
        return f"CREATE SCHEMA IF NOT EXISTS {self.schema};\n{create} {self.qualified_name} (\n    {body}\n);"

    def add_missing_columns(self) -> str:
        """ALTER TABLE ... ADD COLUMN IF NOT EXISTS for every column: brings a table an older release created up to the spec."""
        return "\n".join(f"ALTER TABLE {self.qualified_name} ADD COLUMN IF NOT EXISTS {c.name} {c.type};" for c in self.columns)


def ddl(*specs: TableSpec) -> str:
    return "\n".join(spec.ddl() for spec in specs)
