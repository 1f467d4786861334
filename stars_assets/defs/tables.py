"""The Dagster column schema of a table, derived from its spec (stars_assets.lib.tables)."""

import dagster as dg

from stars_assets.lib.tables import TableSpec


def column_schema(spec: TableSpec) -> dg.TableSchema:
    """Every column with its type and description; PHI columns say so, nullability is a constraint."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type,
                description=c.description + (" (PHI: masked in previews)" if c.is_phi else ""),
                constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=spec.primary_key == (c.name,)),
            )
            for c in spec.columns
        ]
    )


def table_metadata(spec: TableSpec) -> dict:
    """Definition metadata of an asset stored in the spec's table."""
    return {"dagster/column_schema": column_schema(spec), "dagster/table_name": spec.qualified_name}
