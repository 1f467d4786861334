"""The lake: versioned Delta Lake tables that everyone outside the pipeline reads.

A table lives at `<root>/<layer>/<table>` (`layer` is the warehouse schema, or `quality`). Readers
(dashboards, the API, `stars-lake`, analysts) go through `read_table`; the pipeline writes through
`publish_query`, which replaces exactly the given partitions in one Delta commit and writes no
commit when their rows did not change.
"""

from stars_assets.lib.lake.errors import IncompatibleSchemaError, LakeError, UnknownTableError, UnknownVersionError
from stars_assets.lib.lake.publish import PublishResult, fingerprints, publish_query
from stars_assets.lib.lake.tables import (
    TableInfo,
    arrow_dataset,
    dataset,
    describe_table,
    history,
    list_tables,
    open_table,
    read_table,
    table_uri,
    vacuum,
)

__all__ = [
    "IncompatibleSchemaError",
    "LakeError",
    "PublishResult",
    "TableInfo",
    "UnknownTableError",
    "UnknownVersionError",
    "arrow_dataset",
    "dataset",
    "describe_table",
    "fingerprints",
    "history",
    "list_tables",
    "open_table",
    "publish_query",
    "read_table",
    "table_uri",
    "vacuum",
]
