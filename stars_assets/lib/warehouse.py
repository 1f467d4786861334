"""Small helpers every layer uses against the DuckDB warehouse."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager

import duckdb


@contextmanager
def in_transaction(con: duckdb.DuckDBPyConnection):
    """All statements inside commit together or not at all: a crash leaves the previous state."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


# DuckDB takes 80% of the machine's memory by default; the pipeline keeps one file (bronze) or
# one day's keys (silver) in memory and lets DuckDB spill the rest to its temp directory
# (<database>.tmp), so peak memory stays flat as a day grows. STARS_DUCKDB_MEMORY_LIMIT overrides.
DEFAULT_MEMORY_LIMIT = "2GB"
_MEMORY_SETTING = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


def configure_connection(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Bound DuckDB's memory on a warehouse connection (a database-wide setting while it is open)."""
    limit = os.environ.get("STARS_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT).strip()
    if not _MEMORY_SETTING.match(limit):
        raise ValueError(f"STARS_DUCKDB_MEMORY_LIMIT must look like 2GB or 1500MB, got {limit!r}")
    con.execute(f"SET memory_limit = '{limit}'")
    return con
