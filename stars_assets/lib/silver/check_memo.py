"""Contract checks that read only what changed since they last ran.

`validate_table` (contracts.py) reads every row it is given. Run after run over the same data that
is wasted work: a day of silver is tens of millions of rows. So each contract outcome is kept in
`audit.contract_checks` together with the state of the rows it covered, and the next evaluation:

  reuses it          when the rows are in the same state (a no-change re-run)
  checks the rest    when the only change is rows added by a later write (an append of a vendor
                     correction): only rows written after the remembered ones are validated, and
                     the two outcomes are added up; also when the append took some of the
                     remembered rows out and they had all passed (see _kept_outcome)
  validates again    otherwise

The state of a partition is its row count and its latest write time (loaded_at, which every
pipeline write stamps); of a whole table, its row count, latest write time where it has one, and
the inputs its last build recorded. A change that keeps both the count and the write time (an
UPDATE made by hand) is not noticed: the pipeline never does that, and the next rewrite of the
partition validates it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from stars_assets.lib.bronze.quality import RuleOutcome
from stars_assets.lib.silver import contracts, inputs
from stars_assets.lib.silver.tables import CONTRACT_CHECKS
from stars_assets.lib.warehouse import ensure_tables, in_transaction, table_columns

# Columns a pipeline write stamps on every row it writes, per table.
WRITE_TIME_COLUMN = {"outreach_events": "loaded_at", "appointment_events": "loaded_at", "appointments": "updated_at"}

PARTITION_STATE_SQL = """
SELECT partition_date, count(*), max({written}) FROM silver.{table}
WHERE partition_date IN (SELECT unnest($days)) GROUP BY 1
"""
TABLE_STATE_SQL = "SELECT count(*), {written} FROM silver.{table}"
ROWS_UNTIL_SQL = "SELECT count(*) FROM silver.{table} WHERE partition_date = $day AND {written} <= $until"
REMEMBERED_DAYS_SQL = """
SELECT partition_date, row_count, written_until, state, passed, metadata FROM audit.contract_checks
WHERE silver_table = $table AND partition_date IN (SELECT unnest($days))
"""
FORGET_DAYS_SQL = "DELETE FROM audit.contract_checks WHERE silver_table = $table AND partition_date IN (SELECT unnest($days))"
REMEMBERED_SQL = """
SELECT row_count, written_until, state, passed, metadata FROM audit.contract_checks
WHERE silver_table = $table AND partition_date IS NOT DISTINCT FROM $day
"""
FORGET_SQL = "DELETE FROM audit.contract_checks WHERE silver_table = $table AND partition_date IS NOT DISTINCT FROM $day"
REMEMBER_SQL = "INSERT INTO audit.contract_checks VALUES ($table, $day, $rows, $until, $state, $passed, $metadata, $now)"

# Metadata of validate_table that add up across pieces of a table.
_SUMMED = ("rows_checked", "failures")
_MERGED = ("failures_by_check", "warnings_by_check")
_LISTED = ("examples", "warning_examples")


@dataclass(frozen=True)
class _State:
    day: date | None
    rows: int
    written_until: datetime | None
    text: str


def validate_remembered(con: duckdb.DuckDBPyConnection, table: str, days: list[date] | None) -> RuleOutcome:
    """The contract outcome for `table` (its partitions `days`, or the whole table when None)."""
    ensure_tables(con, CONTRACT_CHECKS)
    model = contracts.CONTRACTS[table]
    written = WRITE_TIME_COLUMN.get(table)
    if table_columns(con, f"silver.{table}") is None:
        return contracts.validate_table(con, "silver", table, model)
    pieces: list[tuple[RuleOutcome, str]] = []
    if days is None or written is None or table not in WRITE_TIME_COLUMN or not _has_partitions(table):
        state = _table_state(con, table, written)
        pieces.append(_remembered_or_validated(con, table, model, state, where=None))
        scope = "all partitions"
    else:
        found = {
            row[0]: row
            for row in con.execute(PARTITION_STATE_SQL.format(table=table, written=written), {"days": days}).fetchall()
        }
        for day in sorted(set(days)):
            _, rows, until = found.get(day, (day, 0, None))
            state = _State(day, rows, until, f"{rows}:{until}")
            pieces.append(_remembered_or_validated(con, table, model, state, where=day, written=written))
        scope = "partition_date in " + ", ".join(str(d) for d in sorted(set(days)))
    return _combine(table, model.name, scope, pieces)


def validate_partitions(con: duckdb.DuckDBPyConnection, table: str, days: list[date]) -> dict[date, RuleOutcome]:
    """The contract outcome of each delivery date of `days` (a partitioned table), as `validate_remembered` gives
    it for one day, with a range's work done at once: one state query, one look-up of what is remembered, one
    grouped validation of every day that changed (contracts.validate_partitions), one write of the new outcomes.
    Only a day extended by an append is validated on its own (its appended rows only)."""
    ensure_tables(con, CONTRACT_CHECKS)
    model = contracts.CONTRACTS[table]
    written = WRITE_TIME_COLUMN.get(table)
    days = sorted(set(days))
    if written is None or not _has_partitions(table) or table_columns(con, f"silver.{table}") is None:
        return {day: validate_remembered(con, table, [day]) for day in days}
    version = _contract_version(model)
    found = {
        row[0]: row for row in con.execute(PARTITION_STATE_SQL.format(table=table, written=written), {"days": days}).fetchall()
    }
    states = {day: _State(day, rows, until, f"{rows}:{until}") for day, rows, until in (found.get(d, (d, 0, None)) for d in days)}
    remembered = {row[0]: row[1:] for row in con.execute(REMEMBERED_DAYS_SQL, {"table": table, "days": days}).fetchall()}
    outcomes: dict[date, RuleOutcome] = {}
    how: dict[date, str] = {}
    changed: list[date] = []
    for day, state in states.items():
        memo = remembered.get(day)
        if memo is not None and memo[2] == f"{state.text}:{version}":
            outcomes[day], how[day] = RuleOutcome(passed=memo[3], metadata=json.loads(memo[4])), "reused"
        elif memo is not None and memo[1] is not None and state.written_until is not None and state.written_until > memo[1]:
            # Possibly an append: validate_remembered checks the rows after the remembered ones, or the whole day.
            outcomes[day], how[day] = _remembered_or_validated(con, table, model, state, where=day, written=written)
        else:
            changed.append(day)
    if changed:
        validated = contracts.validate_partitions(con, "silver", table, model, changed)
        with in_transaction(con):
            con.execute(FORGET_DAYS_SQL, {"table": table, "days": changed})
            now = datetime.now(UTC).replace(tzinfo=None)
            for day in changed:
                state = states[day]
                _remember(
                    con, table, _State(day, state.rows, state.written_until, f"{state.text}:{version}"), validated[day], now
                )
        for day in changed:
            outcomes[day], how[day] = validated[day], "validated"
    return {
        day: RuleOutcome(
            outcomes[day].passed, {**_plain(outcomes[day].metadata), "scope": f"partition_date in {day}", "evaluation": how[day]}
        )
        for day in days
    }


def _contract_version(model) -> str:
    """Changes when the contract's rules change, so a remembered outcome is only reused under the same rules."""
    return hashlib.sha256(repr(model).encode()).hexdigest()[:16]


def _has_partitions(table: str) -> bool:
    return "partition_date" in contracts.CONTRACTS[table].columns


def _table_state(con, table: str, written: str | None) -> _State:
    rows, until = con.execute(TABLE_STATE_SQL.format(table=table, written=f"max({written})" if written else "NULL")).fetchone()
    return _State(None, rows, until, f"{rows}:{until}:{inputs.recorded_fingerprint(con, table)}")


def _remembered_or_validated(
    con, table: str, model, state: _State, where: date | None, written: str | None = None
) -> tuple[RuleOutcome, str]:
    remembered = con.execute(REMEMBERED_SQL, {"table": table, "day": state.day}).fetchone()
    state = _State(state.day, state.rows, state.written_until, f"{state.text}:{_contract_version(model)}")
    if remembered is not None and remembered[2] == state.text:
        return RuleOutcome(passed=remembered[3], metadata=json.loads(remembered[4])), "reused"
    outcome, how = None, "validated"
    if (
        where is not None
        and remembered is not None
        and remembered[1] is not None
        and state.written_until is not None
        and state.written_until > remembered[1]
    ):
        still_there = con.execute(
            ROWS_UNTIL_SQL.format(table=table, written=written), {"day": where, "until": remembered[1]}
        ).fetchone()[0]
        kept = _kept_outcome(RuleOutcome(remembered[3], json.loads(remembered[4])), remembered[0], still_there)
        if kept is not None:
            # The rest were written later: validate those only.
            until = remembered[1]
            added = contracts.validate_table(
                con, "silver", table, model, where=lambda t: (t.partition_date == where) & (t[written] > until)
            )
            outcome, how = _add(kept, added), "validated the new rows"
    if outcome is None:
        outcome = contracts.validate_table(con, "silver", table, model, where=where)
    with in_transaction(con):
        con.execute(FORGET_SQL, {"table": table, "day": state.day})
        _remember(con, table, state, outcome, datetime.now(UTC).replace(tzinfo=None))
    return outcome, how


def _kept_outcome(remembered: RuleOutcome, rows: int, still_there: int) -> RuleOutcome | None:
    """What a remembered outcome says of the rows it covered that are still there, or None when it cannot say.

    All of them there: the outcome itself. Some taken out (an append moves a conflicting event's copy
    loaded from the day's earlier files to the quarantine): every contract rule is a verdict per row
    (contracts._passes) or a uniqueness, so rows that all passed still pass with some of them gone. An
    outcome with a failure or a warning cannot say whether the rows taken out were the ones it counted.
    """
    if still_there == rows:
        return remembered
    metadata = _plain(remembered.metadata)
    if still_there < rows and remembered.passed and not metadata.get("failures") and not metadata.get("warnings_by_check"):
        return RuleOutcome(True, {**metadata, "rows_checked": still_there})
    return None


def _remember(con, table: str, state: _State, outcome: RuleOutcome, now: datetime) -> None:
    """Keep `outcome` for the rows `state` describes (its text carries the contract version); inside a transaction."""
    con.execute(
        REMEMBER_SQL,
        {
            "table": table,
            "day": state.day,
            "rows": state.rows,
            "until": state.written_until,
            "state": state.text,
            "passed": outcome.passed,
            "metadata": json.dumps(_plain(outcome.metadata), default=str),
            "now": now,
        },
    )


def _plain(metadata: dict) -> dict:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in metadata.items()}


def _add(first: RuleOutcome, second: RuleOutcome) -> RuleOutcome:
    a, b = _plain(first.metadata), _plain(second.metadata)
    merged: dict[str, Any] = dict(b)
    for key in _SUMMED:
        merged[key] = int(a.get(key, 0)) + int(b.get(key, 0))
    for key in _MERGED:
        counts = dict(a.get(key) or {})
        for label, n in (b.get(key) or {}).items():
            counts[label] = counts.get(label, 0) + n
        if counts:
            merged[key] = counts
    for key in _LISTED:
        listed = list(a.get(key) or []) + list(b.get(key) or [])
        if listed or key in merged:
            merged[key] = listed[: contracts.MAX_EXAMPLES]
    return RuleOutcome(passed=first.passed and second.passed, metadata=merged)


def _combine(table: str, contract: str, scope: str, pieces: list[tuple[RuleOutcome, str]]) -> RuleOutcome:
    if len(pieces) == 1:
        outcome, how = pieces[0]
        metadata = {**_plain(outcome.metadata), "scope": scope, "evaluation": how}
        return RuleOutcome(outcome.passed, metadata)
    total = pieces[0][0]
    for outcome, _ in pieces[1:]:
        total = _add(total, outcome)
    metadata = {
        **_plain(total.metadata),
        "table": f"silver.{table}",
        "contract": contract,
        "scope": scope,
        "evaluation": ", ".join(how for _, how in pieces),
    }
    return RuleOutcome(all(o.passed for o, _ in pieces), metadata)
