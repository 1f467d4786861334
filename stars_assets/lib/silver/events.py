"""The silver event engine: validate -> quarantine -> deduplicate -> write -> reconcile, one delivery
date at a time, for every event kind (lib/silver/event_kinds.py holds the kinds as EventSpecs).

For one delivery date: normalize each provider's bronze rows through its YAML mapping into the
kind's canonical columns, resolve the member (identity.py), reject what is unusable with a reason,
drop duplicates, then write the partition in one transaction together with its quarantine rows and
its reconciliation counts (rows delivered = loaded + quarantined + duplicates removed), and let the
kind derive what it keeps beside the history (appointments: the latest state).

`audit.silver_inputs` (inputs.py) lets a run skip an unchanged day, add only the rows of new bronze
files (a vendor's correction file), or rebuild the day. Duplicates are found on event_hash first, a
63-bit number from the md5 of provider:event_key that silver stores beside event_id (cheap to group,
join, and scan over the window's hundreds of millions of rows), and confirmed on event_id itself; a
row's raw text is only rendered for the rows that go to quarantine.

One deduplication rule for every kind: an event is a duplicate when an earlier copy (in file and
row order) is in the same delivery, or when its event_id is already loaded in a partition within
DEDUP_WINDOW_DAYS days of its delivery date. Vendors deliver at least once: a repeat comes within
hours (a re-sent file) or days (a late or corrected file), so a window of a month catches them,
while an event re-sent more than that many days later is loaded again (and the uniqueness check,
which verifies the same window, says nothing). Bounding the look-back keeps each day's cost
proportional to the window instead of to the whole history, so a full day, a no-change re-run
(skipped through silver_inputs) and a 1% correction (only the new file's rows are hashed against
the window) stay cheap as the history grows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial

import duckdb

from stars_assets.lib import warehouse
from stars_assets.lib.bronze.tables import delivered_json
from stars_assets.lib.providers import ProviderConfig
from stars_assets.lib.silver import inputs
from stars_assets.lib.silver.expressions import key_expression, local_hour_params
from stars_assets.lib.silver.identity import (
    IDENTITY_RULES,
    RESOLVE_JOIN,
    RESOLVED_COLUMNS,
    identifier_pattern_params,
    member_ref_sql,
)
from stars_assets.lib.silver.tables import (
    EVENT_HASH,
    EVENT_ID,
    MEMBER_IDENTIFIERS,
    MEMBERS,
    SILVER_FLAGS,
    SILVER_RECONCILIATION,
)
from stars_assets.lib.tables import TableSpec
from stars_assets.lib.warehouse import duckdb_setting, in_transaction

CONFLICTING_DUPLICATE = "conflicting_duplicate"
CONFLICT_DETAIL = "'another row with this event key has different content'"
# An event stamped later than this after the start of its delivery day cannot have happened
# yet: one day for the day itself plus one for the widest time-zone offset of a late evening.
FUTURE_AFTER_DAYS = 2
# A day's events are deduplicated against the partitions this many days before and after it.
DEDUP_WINDOW_DAYS = 31


@dataclass(frozen=True)
class Rule:
    """A reason to quarantine a row: `condition` is SQL over the candidate row `c` (and the kind's
    joins), `detail` the quarantine text, SQL over the rejected row `r`."""

    reason: str
    condition: str
    detail: str


@dataclass(frozen=True)
class EventSpec:
    """One kind of event: its silver table, the providers that feed it and how their rows become it."""

    table: TableSpec
    provider_kind: str  # ProviderConfig.kind, also the name of the provider's mapping attribute
    # The kind's canonical columns for one provider, as SQL over its bronze row `b` (values bound into params).
    columns: Callable[[ProviderConfig, dict], dict[str, str]]
    rules: tuple[Rule, ...]  # checked after the identity rules, in order
    # Columns recomputed once the kind's joins are there (SQL over `c` and the joins), replacing the candidate's.
    derived: dict[str, str] | None = None
    joins: str = ""  # SQL joined to the candidates; {candidates} is every candidate row of the run
    # Written in the same transaction after the events, for what the kind keeps beside its history.
    after_write: Callable[[duckdb.DuckDBPyConnection, date, datetime], object] | None = None
    tables: tuple[TableSpec, ...] = ()  # further tables the kind writes
    # Caveats recorded in audit.silver_flags for loaded rows: `condition` and `detail` are SQL over the row `r`.
    flags: tuple[Rule, ...] = ()
    # The column after_write keeps its states by: the keys the day held before the build are kept in
    # STATE_KEYS_TABLE, so that after_write also revisits what the build took out.
    state_key: str | None = None

    @property
    def name(self) -> str:
        return self.table.name


@dataclass(frozen=True)
class ProviderCounts:
    provider: str
    delivered: int
    loaded: int
    quarantined: int
    duplicates: int


@dataclass(frozen=True)
class PartitionBuild:
    """What a silver partition build did: its mode (unchanged, append, replace), its counts and what the kind derived."""

    mode: str
    counts: list[ProviderCounts]
    files_read: int = 0
    derived: object = None


VALIDATED_SQL = """
SELECT c.*{exclude}, {derived}{resolved}{reason}
FROM ({rows}) AS c
{joins}
{resolve}
"""
# A row's file is its number in event_files: the path is a long string on every row.
FILES_SQL = (
    "CREATE OR REPLACE TEMP TABLE event_files AS SELECT unnest($files) AS source_file, generate_subscripts($files, 1) AS file_no"
)
# A run's validated rows are kept in a temporary table that every later step reads, unless the run is
# too large for that: then they are validated twice, once to set aside the few rows a closer look needs
# (SET_ASIDE_SQL) and once as they are written (INSERT_EVENTS_SQL). The table takes about 265 bytes a row:
# a full day (28 million rows, 7.6 GB) outgrows any memory limit that keeps the process under 4 GB, and
# writing it to DuckDB's temp directory and reading it back cost more than validating again (parsing,
# member resolution and the rules). A full day's silver outreach build took 124 and 135 s kept, 110 and
# 106 s validated twice. A 1% correction (287,000 rows) fits: its validating and inserting statements took
# 1.4 s kept, 1.9 s validated twice (each pass reads bronze again). The run's bronze rows are counted
# first (DELIVERED_TABLE_SQL). Either way the run's event hashes alone (8 bytes a row) are kept to find the
# suspects: the hashes repeated in the run or already held by an older row. The vendor's raw member
# identifier is dropped once resolved.
KEPT_ROWS_LIMIT = 2_000_000  # about 530 MB kept
KEEP_VALIDATED_SQL = "CREATE OR REPLACE TEMP TABLE event_validated AS {validated_rows}"
VALIDATED_ROWS = "SELECT v.* EXCLUDE (member_ref), {event_hash} AS event_hash FROM ({validated}) AS v"
EVENT_HASHES_SQL = "CREATE OR REPLACE TEMP TABLE event_hashes AS SELECT {event_hash} AS event_hash FROM ({rows}) AS c"

STATE_KEYS_TABLE = "event_state_keys"
STATE_KEYS_SQL = f"CREATE OR REPLACE TEMP TABLE {STATE_KEYS_TABLE} AS SELECT DISTINCT {{key}} AS state_key FROM {{table}} WHERE partition_date = $day"

# Rows already written that a day's events are deduplicated against: other days of the window,
# and this day's rows from files this run does not read (an append).
OLDER_ROWS = """
    o.partition_date BETWEEN $window_start AND $window_end
    AND NOT (o.partition_date = $day AND o.source_file IN (SELECT unnest($files)))
"""
HAS_OLDER_ROWS_SQL = "SELECT count(*) > 0 FROM (SELECT 1 FROM {table} AS o WHERE " + OLDER_ROWS + " LIMIT 1)"
# Duplicates are found before anything is written (deleting rows a transaction has just
# appended makes DuckDB rewrite them all at commit):
#   1. suspects: hashes that occur twice among the run's rows, or that an older row holds
#   2. duplicates: of the suspect rows that are valid, the copies after the first (in file and
#      row order) and the events an older row already holds; the suspect rows (few: repeats only)
#      are set aside for this and for the conflicts, together with the rejected rows
#   3. the valid rows that are not duplicates are inserted
# Repeated hashes are found by sorting: grouping a day's tens of millions of distinct hashes spills a hash table
# (8.8 s at full volume), while a sorted number meets its copies next to it. {rows} selects the hashes as h.
REPEATED_HASHES_SQL = "SELECT DISTINCT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS previous FROM ({rows})) WHERE h = previous"
SUSPECTS_SQL = "CREATE OR REPLACE TEMP TABLE event_suspects AS " + REPEATED_HASHES_SQL.format(
    rows="SELECT event_hash AS h FROM event_hashes"
)
# The older rows holding one of the run's events, read once for the three passes below (the
# table is scanned once rather than once per pass), found by the stored event_hash: a month of
# window holds hundreds of millions of rows, and a fixed-width number is cheap to scan. Found in two
# statements: the matching rows' ids from the narrow columns, then their wide columns by rowid. As one
# statement, DuckDB read the wide columns (event_id and record_hash, uncompressed) of every row its
# Bloom filter on event_hash let through, about three times the matches and spread over the whole window.
# The first statement builds its hash table on the run's hashes and probes the window's rows, whatever DuckDB
# estimates. Its estimate of the window's rows comes from the whole table (a fifth of it for a date range that does not
# span the table's dates, a fifth of that after the day-and-file filter), so a full day against up to six full days
# of history (as far as measured) built on the window's rows instead, and that build spilled. Against one to six full
# days: 4.05-4.79, 7.16-7.63, 11.18-11.65, 19.2, 19.3 and 24.2 s; built on the run's hashes, 2.38-2.41, 3.83-4.08,
# 5.11-5.24, 7.3, 8.3 and 10.7 s.
OLDER_IDS_BUILD = ("disabled_optimizers", "build_side_probe_side")
OLDER_MATCHES_SQL = (
    f"""
CREATE OR REPLACE TEMP TABLE event_older_ids AS
SELECT o.rowid AS row_id FROM {{table}} AS o
WHERE {OLDER_ROWS}
  AND o.event_hash IN (SELECT event_hash FROM event_hashes)
""",
    """
CREATE OR REPLACE TEMP TABLE event_older AS
SELECT o.event_id, o.record_hash, o.event_hash, o.provider, o.partition_date, o.source_file, o.source_row, o.rowid AS row_id
FROM {table} AS o
WHERE o.rowid IN (SELECT row_id FROM event_older_ids)
""",
)
NO_OLDER_MATCHES_SQL = (
    "CREATE OR REPLACE TEMP TABLE event_older (event_id VARCHAR, record_hash VARCHAR, event_hash BIGINT, "
    "provider VARCHAR, partition_date DATE, source_file VARCHAR, source_row BIGINT, row_id BIGINT)"
)
SUSPECTS_SEEN_BEFORE_SQL = "INSERT INTO event_suspects SELECT DISTINCT event_hash FROM event_older"
# The rows a closer look needs, taken from the kept rows or the first validation pass: the rejected rows, the suspects
# (valid or not) and the rows a flag names. The passes below read the valid suspects; the quarantine the
# rejected; the flags their rows. {flagged} is SQL over the validated row `r`.
SET_ASIDE_SQL = """
CREATE OR REPLACE TEMP TABLE event_set_aside AS SELECT * FROM ({validated_rows}) AS r
WHERE r.reason IS NOT NULL OR r.event_hash IN (SELECT h FROM event_suspects) OR {flagged}
"""
VALID_SUSPECTS = "SELECT * FROM event_set_aside WHERE reason IS NULL AND event_hash IN (SELECT h FROM event_suspects)"
DUPLICATES_SQL = f"""
CREATE OR REPLACE TEMP TABLE event_duplicates AS
WITH suspect_rows AS (
    SELECT v.provider, v.file_no, v.source_row, {EVENT_ID.format(row="v.")} AS event_id,
           row_number() OVER (PARTITION BY v.provider, v.event_key ORDER BY v.file_no, v.source_row) AS copy_number
    FROM ({VALID_SUSPECTS}) AS v
)
SELECT provider, file_no, source_row FROM suspect_rows
WHERE copy_number > 1
   OR event_id IN (SELECT event_id FROM event_older)
"""
# The rows not set aside are written from the kept rows or a second validation pass (which skips the
# rules: every row a rule rejects is set aside); then the set-aside rows that are valid and neither a
# later copy nor a conflicting version.
INSERT_EVENTS_SQL = """
INSERT INTO {table} ({columns})
SELECT {values}
FROM ({rows}) AS v JOIN event_files AS f USING (file_no)
WHERE {condition}
"""
NOT_SET_ASIDE = "NOT EXISTS (SELECT 1 FROM event_set_aside AS s WHERE s.file_no = v.file_no AND s.source_row = v.source_row)"
SET_ASIDE_LOADED = (
    "v.reason IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM event_duplicates AS d WHERE d.file_no = v.file_no AND d.source_row = v.source_row)"
    " AND {not_conflicting}"
)
REJECTS_SQL = "CREATE OR REPLACE TEMP TABLE event_rejects AS SELECT * FROM event_set_aside WHERE reason IS NOT NULL"
# The same event key with different content (record_hash over every vendor field), among the
# run's valid rows or against a row already loaded in the window: no version is trusted; every
# copy the day holds is quarantined (the versions side by side in the quarantine), none is loaded.
CONFLICTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE event_conflicts AS
WITH suspect_rows AS ({VALID_SUSPECTS}),
conflicting AS (
    SELECT provider, event_key FROM suspect_rows GROUP BY 1, 2 HAVING count(DISTINCT record_hash) > 1
    UNION
    SELECT s.provider, s.event_key FROM suspect_rows AS s
    JOIN event_older AS o ON o.event_id = {EVENT_ID.format(row="s.")} AND o.record_hash IS DISTINCT FROM s.record_hash
)
SELECT s.* REPLACE ('{CONFLICTING_DUPLICATE}' AS reason) FROM suspect_rows AS s JOIN conflicting USING (provider, event_key)
"""
# An append reads only the day's new files, so a conflicting event's copy loaded from the day's
# earlier files is in event_older, not among the run's rows: it leaves silver for the quarantine
# too, so a day appended to holds what rebuilding it from all its files would. (A copy loaded on
# another day of the window stays: that day is not rebuilt either.) A row is taken out by its rowid,
# read in the same transaction (no scan of the day's keys).
DEMOTED_SQL = f"""
CREATE OR REPLACE TEMP TABLE event_demoted AS
SELECT DISTINCT o.provider, o.source_file, o.source_row, o.row_id, '{CONFLICTING_DUPLICATE}' AS reason FROM event_older AS o
WHERE o.partition_date = $day AND o.event_id IN (SELECT {EVENT_ID.format(row="c.")} FROM event_conflicts AS c)
"""
UNLOAD_DEMOTED_SQL = (
    "DELETE FROM {table} WHERE rowid IN (SELECT row_id FROM event_demoted)",
    "DELETE FROM audit.silver_flags AS t USING event_demoted AS d WHERE t.silver_table = $table AND t.partition_date = $day "
    "AND t.provider = d.provider AND t.source_file = d.source_file AND t.source_row = d.source_row",
)
# A row of the run is identified by its file number and row (a file belongs to one provider).
NOT_CONFLICTING = (
    "NOT EXISTS (SELECT 1 FROM event_conflicts AS x WHERE x.file_no = {a}.file_no AND x.source_row = {a}.source_row)"
)
FLAGS_SQL = """
INSERT INTO audit.silver_flags
SELECT $table, r.provider, $day, f.source_file, r.source_row, {flag}, {detail}, $run_id, $now
FROM event_set_aside AS r JOIN event_files AS f USING (file_no)
WHERE r.reason IS NULL AND {condition}
  AND NOT EXISTS (SELECT 1 FROM event_duplicates AS d WHERE d.file_no = r.file_no AND d.source_row = r.source_row)
  AND {not_conflicting}
"""
# The raw bronze row of each rejected row of one provider: {bronze} is its bronze table, {rejected} the
# rows (provider, source_file, source_row, reason and what {detail} reads). The run's rejects and the
# demoted rows are inserted apart: as one UNION ALL, DuckDB read more of bronze (a full day's
# correction: 1.8-2.0 s, against 1.5 s apart). The raw text is the row as delivered, without bronze's own
# columns: the quarantine row has its file, row and day, and fetching the record hash and load time of
# rows scattered over a day cost more than the rest (the bench correction's six inserts: 2.0-2.3 s with
# them, 0.7-0.8 s without).
INSERT_QUARANTINE_SQL = f"""
INSERT INTO audit.quarantine
SELECT 'silver', r.provider, $table, $day, r.source_file, r.source_row, r.reason, {{detail}},
       {delivered_json("b")}, $run_id, $now
FROM {{rejected}} AS r
JOIN {{bronze}} AS b ON b._partition_date = $day AND b._source_file = r.source_file AND b._source_row = r.source_row
WHERE r.provider = $provider
"""
RUN_REJECTS = "(SELECT x.*, f.source_file FROM event_rejects AS x JOIN event_files AS f USING (file_no))"

# Per provider, for the files read: rows delivered (bronze, event_delivered) = loaded + quarantined + duplicates;
# rows demoted from earlier files move from loaded to quarantined.
COUNTS_SQL = """
CREATE OR REPLACE TEMP TABLE event_counts AS
WITH delivered AS (SELECT * FROM event_delivered),
loaded AS (SELECT provider, count(*) AS n FROM {table}
           WHERE partition_date = $day AND source_file IN (SELECT unnest($files)) GROUP BY 1),
quarantined AS (SELECT provider, count(*) AS n FROM event_rejects GROUP BY 1),
duplicates AS (SELECT provider, count(*) AS n FROM event_duplicates GROUP BY 1),
demoted AS (SELECT provider, count(*) AS n FROM event_demoted GROUP BY 1)
SELECT d.provider, d.n AS delivered, coalesce(l.n, 0) - coalesce(m.n, 0) AS loaded,
       coalesce(q.n, 0) + coalesce(m.n, 0) AS quarantined, coalesce(x.n, 0) AS duplicates
FROM delivered AS d LEFT JOIN loaded AS l USING (provider) LEFT JOIN quarantined AS q USING (provider)
LEFT JOIN duplicates AS x USING (provider) LEFT JOIN demoted AS m USING (provider)
WHERE d.n > 0
"""
# The run's bronze rows per provider, counted before the build (they choose how it validates) and
# reconciled after it. {counts} is a UNION ALL of DELIVERED_SQL, one per provider's bronze table.
DELIVERED_SQL = """
SELECT $provider_{n} AS provider, count(*) AS n FROM {bronze}
WHERE _partition_date = $day AND _source_file IN (SELECT unnest($files))
"""
DELIVERED_TABLE_SQL = "CREATE OR REPLACE TEMP TABLE event_delivered AS {counts}"
RUN_ROWS_SQL = "SELECT sum(n) FROM event_delivered"
# Counts of this run added to what the partition already had (an append adds to them).
RECONCILE_SQL = """
CREATE OR REPLACE TEMP TABLE event_reconciled AS
SELECT provider, sum(delivered) AS delivered, sum(loaded) AS loaded, sum(quarantined) AS quarantined,
       sum(duplicates) AS duplicates
FROM (
    SELECT provider, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed
    FROM audit.silver_reconciliation WHERE silver_table = $table AND partition_date = $day
    UNION ALL SELECT provider, delivered, loaded, quarantined, duplicates FROM event_counts
) AS t (provider, delivered, loaded, quarantined, duplicates)
GROUP BY provider
"""
DELETE_RECONCILIATION_SQL = "DELETE FROM audit.silver_reconciliation WHERE silver_table = $table AND partition_date = $day"
WRITE_RECONCILIATION_SQL = """
INSERT INTO audit.silver_reconciliation
SELECT $table, provider, $day, delivered, loaded, quarantined, duplicates, $run_id, $now FROM event_reconciled
"""
DELETE_PARTITION_SQL = (
    "DELETE FROM {table} WHERE partition_date = $day",
    "DELETE FROM audit.silver_flags WHERE silver_table = $table AND partition_date = $day",
    "DELETE FROM audit.quarantine WHERE layer = 'silver' AND dataset = $table AND partition_date = $day",
    DELETE_RECONCILIATION_SQL,
)
PARTITION_COUNTS_SQL = """
SELECT provider, rows_delivered, rows_loaded, rows_quarantined, duplicates_removed
FROM audit.silver_reconciliation WHERE silver_table = $table AND partition_date = $day ORDER BY provider
"""
TEMP_TABLES = (
    "event_files",
    "event_hashes",
    "event_validated",
    "event_older_ids",
    "event_older",
    "event_rejects",
    "event_suspects",
    "event_set_aside",
    "event_duplicates",
    "event_conflicts",
    "event_demoted",
    "event_delivered",
    "event_counts",
    "event_reconciled",
    STATE_KEYS_TABLE,
)


def _bronze(provider: ProviderConfig, spec: EventSpec) -> str:
    return f"bronze.{provider.dataset(getattr(provider, spec.provider_kind).dataset).name}"


def candidates_sql(spec: EventSpec, providers: list[ProviderConfig]) -> tuple[str, dict]:
    """One SELECT per provider, normalized to the kind's columns, UNION ALL.

    Rows are the provider's bronze rows of $day whose file is in event_files (FILES_SQL)."""
    params: dict = {}
    selects = []
    for provider in providers:
        mapping = getattr(provider, spec.provider_kind)
        p = provider.name
        params[f"{p}_provider"] = p
        params[f"{p}_id_type"] = provider.identifier_type
        columns = {
            "provider": f"${p}_provider",
            "event_key": key_expression(mapping.event_key, f"{p}_key", params),
            "member_ref": member_ref_sql(mapping.member_ref, provider.identifier_type),
            "identifier_type": f"${p}_id_type",
            **spec.columns(provider, params),
            "file_no": "f.file_no",
            "source_row": "b._source_row",
            "record_hash": "b._record_hash",
        }
        selects.append(
            "SELECT "
            + ",\n       ".join(f"{sql} AS {name}" for name, sql in columns.items())
            + f"\nFROM {_bronze(provider, spec)} AS b JOIN event_files AS f ON f.source_file = b._source_file\nWHERE b._partition_date = $day"
        )
    return "\nUNION ALL\n".join(selects), params


def validated_sql(spec: EventSpec, rows: str, candidates: str, *, reasons: bool = True) -> str:
    """The candidate rows `rows` with their member resolved and (with `reasons`) the reason each is
    rejected (NULL when valid)."""
    rules = [*IDENTITY_RULES, *((r.reason, r.condition, r.detail) for r in spec.rules)]
    derived = spec.derived or {}
    return VALIDATED_SQL.format(
        exclude=f" EXCLUDE ({', '.join(derived)})" if derived else "",
        derived="".join(f"{sql} AS {name}, " for name, sql in derived.items()),
        resolved=RESOLVED_COLUMNS,
        reason=(",\n       CASE " + " ".join(f"WHEN {c} THEN '{reason}'" for reason, c, _ in rules) + " END AS reason")
        if reasons
        else "",
        rows=rows,
        joins=spec.joins.format(candidates=candidates),
        resolve=RESOLVE_JOIN,
    )


def _validated_rows(spec: EventSpec, union: str, *, reasons: bool) -> str:
    """The run's rows as a validation pass reads them, with their event hash and without the raw member identifier."""
    return VALIDATED_ROWS.format(
        validated=validated_sql(spec, union, union, reasons=reasons), event_hash=EVENT_HASH.format(row="v.")
    )


def quarantine_detail(spec: EventSpec) -> str:
    rules = [
        *IDENTITY_RULES,
        *((r.reason, r.condition, r.detail) for r in spec.rules),
        (CONFLICTING_DUPLICATE, "", CONFLICT_DETAIL),
    ]
    return "CASE r.reason " + " ".join(f"WHEN '{reason}' THEN {detail}" for reason, _, detail in rules) + " END"


def _insert_sql(spec: EventSpec, resolved_rows: str) -> tuple[str, str]:
    """The two INSERTs of a build: the rows not set aside (read from `resolved_rows`: the kept rows or a
    second validation pass), then the set-aside rows that are loaded."""
    written = {
        "event_id": EVENT_ID.format(row="v."),
        "source_file": "f.source_file",
        "partition_date": "$day",
        "loaded_at": "$now",
    }
    names = spec.table.column_names
    insert = partial(
        INSERT_EVENTS_SQL.format,
        table=spec.table.qualified_name,
        columns=", ".join(names),
        values=", ".join(written.get(n, f"v.{n}") for n in names),
    )
    return (
        insert(rows=resolved_rows, condition=NOT_SET_ASIDE),
        insert(
            rows="SELECT * FROM event_set_aside", condition=SET_ASIDE_LOADED.format(not_conflicting=NOT_CONFLICTING.format(a="v"))
        ),
    )


def ensure_tables(con: duckdb.DuckDBPyConnection, spec: EventSpec) -> None:
    """Create the kind's tables, and bring ones an older release made up to their specs."""
    warehouse.ensure_tables(con, spec.table, *spec.tables, SILVER_RECONCILIATION, SILVER_FLAGS, MEMBERS, MEMBER_IDENTIFIERS)


def crosswalk_version(con: duckdb.DuckDBPyConnection) -> str:
    """The member crosswalk every event partition resolves members through."""
    return inputs.recorded_fingerprint(con, "members")


def build_partition(
    con: duckdb.DuckDBPyConnection, spec: EventSpec, providers: list[ProviderConfig], day: date, run_id: str
) -> PartitionBuild:
    """Build (or skip, or extend) one delivery date of the kind's silver table."""
    ensure_tables(con, spec)
    feeds = [p for p in providers if p.kind == spec.provider_kind]
    table = spec.table.qualified_name
    current = inputs.current_inputs(con, [p.name for p in feeds], day, crosswalk_version(con))
    plan = inputs.plan(con, spec.name, day, current)
    if plan.mode == "unchanged":
        return PartitionBuild("unchanged", partition_counts(con, spec, day))
    # Sorted by path: a file's number orders it as its path does (the first copy of an event is kept).
    files = sorted(plan.new_files if plan.mode == "append" else (entry.rsplit(":", 1)[0] for entry in current.files))

    union, params = candidates_sql(spec, feeds)
    validated_rows = _validated_rows(spec, union, reasons=True)
    now = datetime.now(UTC).replace(tzinfo=None)
    scope = {"day": day, "files": files}
    validation = {
        **params,
        **scope,
        "future_after_days": FUTURE_AFTER_DAYS,
        **identifier_pattern_params(),
        **local_hour_params(params, day),
    }
    window = {
        **scope,
        "window_start": day - timedelta(days=DEDUP_WINDOW_DAYS),
        "window_end": day + timedelta(days=DEDUP_WINDOW_DAYS),
    }
    audit = {"table": spec.name, "day": day, "run_id": run_id, "now": now}
    delivered = "\nUNION ALL\n".join(DELIVERED_SQL.format(n=n, bronze=_bronze(p, spec)) for n, p in enumerate(feeds))
    with in_transaction(con):
        if spec.state_key:
            con.execute(STATE_KEYS_SQL.format(key=spec.state_key, table=table), {"day": day})
        if plan.mode == "replace":
            for statement in DELETE_PARTITION_SQL:
                _execute(con, statement.format(table=table), {"day": day, "table": spec.name})
        # validate
        con.execute(FILES_SQL, {"files": files})
        con.execute(
            DELIVERED_TABLE_SQL.format(counts=delivered), {**scope, **{f"provider_{n}": p.name for n, p in enumerate(feeds)}}
        )
        if con.execute(RUN_ROWS_SQL).fetchone()[0] <= KEPT_ROWS_LIMIT:
            _execute(con, KEEP_VALIDATED_SQL.format(validated_rows=validated_rows), validation)
            validated_rows = resolved_rows = "SELECT * FROM event_validated"
            con.execute(EVENT_HASHES_SQL.format(rows=validated_rows, event_hash="c.event_hash"))
        else:
            resolved_rows = _validated_rows(spec, union, reasons=False)
            _execute(con, EVENT_HASHES_SQL.format(rows=union, event_hash=EVENT_HASH.format(row="c.")), validation)
        # deduplicate, and set conflicting versions aside
        con.execute(SUSPECTS_SQL)
        if con.execute(HAS_OLDER_ROWS_SQL.format(table=table), window).fetchone()[0]:
            older_ids, older_rows = OLDER_MATCHES_SQL
            with duckdb_setting(con, *OLDER_IDS_BUILD):
                _execute(con, older_ids.format(table=table), window)
            _execute(con, older_rows.format(table=table), window)
        else:
            con.execute(NO_OLDER_MATCHES_SQL)
        con.execute(SUSPECTS_SEEN_BEFORE_SQL)
        flagged = " OR ".join(f"({flag.condition})" for flag in spec.flags) or "false"
        _execute(con, SET_ASIDE_SQL.format(validated_rows=validated_rows, flagged=flagged), validation)
        for statement in (REJECTS_SQL, DUPLICATES_SQL, CONFLICTS_SQL):
            con.execute(statement)
        con.execute(f"DELETE FROM event_duplicates AS d WHERE {NOT_CONFLICTING.format(a='d').replace('NOT EXISTS', 'EXISTS', 1)}")
        con.execute("INSERT INTO event_rejects BY NAME SELECT * FROM event_conflicts")
        con.execute(DEMOTED_SQL, {"day": day})
        rejected_rows = [(RUN_REJECTS, quarantine_detail(spec))]
        if con.execute("SELECT count(*) FROM event_demoted").fetchone()[0]:
            for statement in UNLOAD_DEMOTED_SQL:
                _execute(con, statement.format(table=table), {"day": day, "table": spec.name})
            rejected_rows.append(("event_demoted", CONFLICT_DETAIL))
        # quarantine
        for provider in feeds:
            for rejected, detail in rejected_rows:
                _execute(
                    con,
                    INSERT_QUARANTINE_SQL.format(rejected=rejected, detail=detail, bronze=_bronze(provider, spec)),
                    {**audit, "provider": provider.name},
                )
        # write
        for statement in _insert_sql(spec, resolved_rows):
            _execute(con, statement, {**validation, "now": now})
        for flag in spec.flags:
            _execute(
                con,
                FLAGS_SQL.format(
                    flag=f"'{flag.reason}'",
                    detail=flag.detail,
                    condition=flag.condition,
                    not_conflicting=NOT_CONFLICTING.format(a="r"),
                ),
                audit,
            )
        derived = spec.after_write(con, day, now) if spec.after_write else None
        # reconcile
        con.execute(COUNTS_SQL.format(table=table), scope)
        con.execute(RECONCILE_SQL, {"table": spec.name, "day": day})
        con.execute(DELETE_RECONCILIATION_SQL, {"table": spec.name, "day": day})
        _execute(con, WRITE_RECONCILIATION_SQL, audit)
        inputs.record(con, spec.name, day, current, run_id)
    for temp in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS temp.main.{temp}")
    return PartitionBuild(plan.mode, partition_counts(con, spec, day), files_read=len(files), derived=derived)


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    """Bind only the parameters the statement names (DuckDB refuses unused ones)."""
    con.execute(sql, {k: value for k, value in params.items() if re.search(rf"\${re.escape(k)}\b", sql)})


def partition_counts(con: duckdb.DuckDBPyConnection, spec: EventSpec, day: date) -> list[ProviderCounts]:
    return [ProviderCounts(*row) for row in con.execute(PARTITION_COUNTS_SQL, {"table": spec.name, "day": day}).fetchall()]
