"""What each silver partition was built from, so a run can skip it, extend it, or rebuild it.

A silver partition (one delivery date of silver.outreach_events or silver.appointment_events)
reads the bronze files the manifest says were loaded for that date, and resolves members through
the crosswalk that silver.members last built. `audit.silver_inputs` records both at each write.
The next run compares them with what is there now:

  unchanged  same files (path and content hash) and the same crosswalk: nothing to do
  append     the same crosswalk, every recorded file still there with the same content, and the
             new files sort after every recorded file of their provider: only their rows are
             added, and it produces what a full rebuild would: the first copy of a duplicated
             event, in file and row order, is kept; a re-send with changed content is quarantined
             as a conflicting duplicate together with the version the day's earlier files loaded
  replace    anything else: the partition is rebuilt from all its files

The warehouse dimensions record their own inputs the same way (partition_date NULL): the
fingerprint of every loaded file of their bronze dataset, so an unchanged extract is not rebuilt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePosixPath

import duckdb

from stars_assets.lib.silver.tables import SILVER_INPUTS

# Bump when the SQL that builds silver changes meaning: every partition is then rebuilt once.
SILVER_LOGIC_VERSION = "2"

INPUTS_DDL = SILVER_INPUTS.ddl()

# The loaded bronze files of some providers (or datasets) on one day (or on every day: $day NULL).
LOADED_FILES_SQL = """
SELECT file_path || ':' || content_hash
FROM audit.file_manifest
WHERE provider IN (SELECT unnest($providers)) AND (dataset IN (SELECT unnest($datasets)) OR len($datasets) = 0)
  AND ($day IS NULL OR partition_date = $day) AND status = 'loaded'
ORDER BY 1
"""

RECORDED_SQL = """
SELECT fingerprint, depends_on, source_files FROM audit.silver_inputs
WHERE silver_table = $table AND partition_date IS NOT DISTINCT FROM $day
"""

RECORD_SQL = """
INSERT INTO audit.silver_inputs VALUES ($table, $day, $fingerprint, $depends_on, $files, $run_id, $now)
"""

FORGET_SQL = "DELETE FROM audit.silver_inputs WHERE silver_table = $table AND partition_date IS NOT DISTINCT FROM $day"


@dataclass(frozen=True)
class Inputs:
    files: tuple[str, ...]  # "<provider>/<file>:<content hash>", sorted
    depends_on: str  # the crosswalk's fingerprint (or '' when the table depends on nothing else)

    @property
    def fingerprint(self) -> str:
        text = "\n".join((SILVER_LOGIC_VERSION, self.depends_on, *self.files))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    mode: str  # unchanged | append | replace
    inputs: Inputs
    new_files: tuple[str, ...] = ()  # file paths to read in append mode


def current_inputs(
    con: duckdb.DuckDBPyConnection,
    providers: list[str],
    day: date | None,
    depends_on: str = "",
    datasets: list[str] | None = None,
) -> Inputs:
    con.execute(INPUTS_DDL)
    rows = con.execute(LOADED_FILES_SQL, {"providers": providers, "datasets": datasets or [], "day": day}).fetchall()
    return Inputs(tuple(r[0] for r in rows), depends_on)


def recorded_fingerprint(con: duckdb.DuckDBPyConnection, table: str, day: date | None = None) -> str:
    """The fingerprint a table (or partition) was last built from; '' when it was never recorded."""
    con.execute(INPUTS_DDL)
    row = con.execute(RECORDED_SQL, {"table": table, "day": day}).fetchone()
    return row[0] if row else ""


def plan(con: duckdb.DuckDBPyConnection, table: str, day: date | None, inputs: Inputs) -> Plan:
    row = con.execute(RECORDED_SQL, {"table": table, "day": day}).fetchone()
    if row is None:
        return Plan("replace", inputs)
    fingerprint, depends_on, recorded_files = row[0], row[1], tuple(row[2] or ())
    if fingerprint == inputs.fingerprint:
        return Plan("unchanged", inputs)
    new = sorted(set(inputs.files) - set(recorded_files))
    if depends_on != inputs.depends_on or not set(recorded_files) <= set(inputs.files) or not new:
        return Plan("replace", inputs)
    last_recorded: dict[str, str] = {}
    for entry in recorded_files:
        provider, name = _split(entry)
        last_recorded[provider] = max(last_recorded.get(provider, ""), name)
    if any(name <= last_recorded.get(provider, "") for provider, name in map(_split, new)):
        return Plan("replace", inputs)
    return Plan("append", inputs, tuple(entry.rsplit(":", 1)[0] for entry in new))


def record(con: duckdb.DuckDBPyConnection, table: str, day: date | None, inputs: Inputs, run_id: str) -> None:
    """Inside the transaction that writes the table or partition."""
    con.execute(FORGET_SQL, {"table": table, "day": day})
    con.execute(
        RECORD_SQL,
        {
            "table": table,
            "day": day,
            "fingerprint": inputs.fingerprint,
            "depends_on": inputs.depends_on,
            "files": list(inputs.files),
            "run_id": run_id,
            "now": datetime.now(UTC).replace(tzinfo=None),
        },
    )


def _split(entry: str) -> tuple[str, str]:
    path = PurePosixPath(entry.rsplit(":", 1)[0])
    return path.parent.name, path.name
