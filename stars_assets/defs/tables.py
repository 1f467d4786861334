"""The Dagster column schema of a table, derived from its spec (stars_assets.lib.tables)."""

from collections.abc import Iterable

import dagster as dg

from stars_assets.lib.tables import Column, TableSpec


def table_columns(columns: Iterable[Column], primary_key: tuple[str, ...] = ()) -> list[dg.TableColumn]:
    """Each column with its type and description; PHI columns say so, nullability is a constraint."""
    return [
        dg.TableColumn(
            c.name,
            c.type,
            description=c.description + (" (PHI: masked in previews)" if c.is_phi else ""),
            constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=primary_key == (c.name,)),
        )
        for c in columns
    ]


def column_schema(spec: TableSpec) -> dg.TableSchema:
    return dg.TableSchema(columns=table_columns(spec.columns, spec.primary_key))


def table_metadata(spec: TableSpec) -> dict:
    """Definition metadata of an asset stored in the spec's table."""
    return {"dagster/column_schema": column_schema(spec), "dagster/table_name": spec.qualified_name}
