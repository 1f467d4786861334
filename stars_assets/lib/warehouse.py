"""Small helpers every layer uses against the DuckDB warehouse."""

from __future__ import annotations

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
