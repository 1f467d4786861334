"""Small helpers every layer uses against the DuckDB warehouse."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager

import duckdb

from stars_assets.lib.tables import TableSpec, ddl


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


@contextmanager
def duckdb_setting(con: duckdb.DuckDBPyConnection, name: str, value: object):
    """The block runs with the DuckDB setting `name` at `value`; the value it had is restored after, even on error.

    Only settings of the database instance (scope GLOBAL, as threads and disabled_optimizers are: every connection to
    the instance sees them) are accepted, because the value is restored through a cursor of its own: a statement that
    fails inside a transaction aborts it, and an aborted transaction refuses even SET until it is rolled back."""
    found = con.execute("SELECT value, scope FROM duckdb_settings() WHERE name = $name", {"name": name}).fetchone()
    if found is None or found[1] != "GLOBAL":
        raise ValueError(f"{name!r} is not a setting of the DuckDB instance (scope GLOBAL)")
    con.execute(f"SET {name} = $value", {"value": value})
    try:
        yield
    finally:
        with con.cursor() as restore:
            restore.execute(f"SET {name} = $value", {"value": found[0]})


def table_columns(con: duckdb.DuckDBPyConnection, qualified_name: str) -> list[str] | None:
    """The columns of a table (or view), or None when there is none. Binding the one name costs under a
    millisecond; the first duckdb_tables() or duckdb_columns() query on a connection costs 15-35 ms (DuckDB builds
    its system views for it), and every step opens its own connection."""
    try:
        return con.table(qualified_name).columns
    except duckdb.CatalogException:
        return None


def ensure_tables(con: duckdb.DuckDBPyConnection, *specs: TableSpec) -> None:
    """Create the tables of `specs` that do not exist, and bring those an older release made up to their specs
    (TableSpec.columns_to_add). Called for every partition: one name lookup per table when everything is there."""
    present = {spec.qualified_name: table_columns(con, spec.qualified_name) for spec in specs}
    behind = [spec for spec in specs if not {c.name for c in spec.columns} <= set(present[spec.qualified_name] or ())]
    if not behind:
        return
    con.execute(ddl(*behind))
    with in_transaction(con):
        for spec in behind:
            for statement in spec.columns_to_add(table_columns(con, spec.qualified_name) or ()):
                con.execute(statement)


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


# DuckDB admits one process per file: a second process (an analyst's session, a stray notebook) makes
# connect() fail with "Could not set lock on file ...: Conflicting lock is held in <program> (PID n)".
LOCK_CONFLICT = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
DEFAULT_LOCK_WAIT_SECONDS = 300.0


def lock_holder(message: str) -> str | None:
    """'PID 123 (/usr/bin/python3)' from DuckDB's lock error, or None when the error is not a lock conflict."""
    found = LOCK_CONFLICT.search(message)
    return f"PID {found['pid']} ({found['program']})" if found else None


def connect_waiting_for_lock(
    database: str,
    *,
    config: dict | None = None,
    max_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    on_wait: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse for writing; while another process holds its lock, say who and wait (doubling up to
    10 s between attempts), for at most `max_wait_seconds`, then raise the lock error."""
    deadline = time.monotonic() + max_wait_seconds
    delay, attempt = 0.5, 1
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=config or {})
        except duckdb.IOException as error:
            holder = lock_holder(str(error))
            remaining = deadline - time.monotonic()
            if holder is None or remaining <= 0:
                raise
            on_wait(
                f"the warehouse {database} is locked by {holder}; waiting {min(delay, remaining):.1f} s before attempt "
                f"{attempt + 1} (gives up after {max_wait_seconds:.0f} s). Analysts read the lake, not the warehouse."
            )
            sleep(min(delay, remaining))
            delay, attempt = min(delay * 2, 10.0), attempt + 1
