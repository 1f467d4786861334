"""The document store: member documents with their audience indexes, a change sequence, API keys and the
audit trail, in SQLite (embedded default) or PostgreSQL (documents as JSONB). A URL chooses:

    sqlite:///<data>/documents.sqlite            (STARS_DOCUMENT_STORE_URL unset)
    postgresql://user:password@host:5432/stars   (psycopg 3)

Both run the same SQL through SQLAlchemy; `Backend` holds the few spots where they differ (column types,
the JSON cast, how a batch is loaded, how writers are serialized). SQLite runs in WAL mode, so the API
reads while the asset writes. Every written document takes the next number of one increasing sequence
(`seq`): the change feed returns documents past a cursor in that order. Writers are serialized (SQLite's write
lock, a table lock in PostgreSQL), so a sequence number never commits behind a larger one. A document is
written only when its content hash differs from the stored one.
No Dagster here.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from stars_assets import settings

STORE_URL_ENV = "STARS_DOCUMENT_STORE_URL"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS member_documents (
    member_id VARCHAR(32) PRIMARY KEY, mbi VARCHAR(32), contract_id VARCHAR(16), region VARCHAR(32), enrolled INTEGER,
    last_touch_epoch BIGINT, document {json} NOT NULL, content_hash VARCHAR(32) NOT NULL, seq BIGINT NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE INDEX IF NOT EXISTS member_documents_mbi ON member_documents (mbi);
CREATE UNIQUE INDEX IF NOT EXISTS member_documents_seq ON member_documents (seq);
CREATE INDEX IF NOT EXISTS member_documents_audience ON member_documents (contract_id, region, member_id);
CREATE TABLE IF NOT EXISTS member_open_gaps (
    member_id VARCHAR(32) NOT NULL, measure_code VARCHAR(32) NOT NULL, PRIMARY KEY (member_id, measure_code)
);
CREATE INDEX IF NOT EXISTS member_open_gaps_measure ON member_open_gaps (measure_code, member_id);
CREATE TABLE IF NOT EXISTS member_opt_outs (
    member_id VARCHAR(32) NOT NULL, channel VARCHAR(32) NOT NULL, PRIMARY KEY (member_id, channel)
);
CREATE TABLE IF NOT EXISTS store_state (name VARCHAR(64) PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id VARCHAR(32) PRIMARY KEY, salt VARCHAR(64) NOT NULL, secret_hash VARCHAR(64) NOT NULL, scopes TEXT NOT NULL,
    label TEXT, created_at VARCHAR(32) NOT NULL, revoked_at VARCHAR(32)
);
CREATE TABLE IF NOT EXISTS api_audit (
    id {identity}, key_id VARCHAR(32) NOT NULL, requested_at VARCHAR(32) NOT NULL, endpoint TEXT NOT NULL,
    member_ids TEXT NOT NULL, result_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_audit_key ON api_audit (key_id, requested_at)
"""

DOCUMENT_COLUMNS = ["member_id", "mbi", "contract_id", "region", "enrolled", "last_touch_epoch", "document", "content_hash"]
STAGING_SQL = """
CREATE TEMP TABLE document_staging (
    member_id VARCHAR(32), mbi VARCHAR(32), contract_id VARCHAR(16), region VARCHAR(32), enrolled INTEGER,
    last_touch_epoch BIGINT, document TEXT, content_hash VARCHAR(32)
);
CREATE TEMP TABLE open_gap_staging (member_id VARCHAR(32), measure_code VARCHAR(32));
CREATE TEMP TABLE opt_out_staging (member_id VARCHAR(32), channel VARCHAR(32))
"""
DROP_STAGING_SQL = "DROP TABLE document_staging; DROP TABLE open_gap_staging; DROP TABLE opt_out_staging"

# The store keeps a staged document only when its content hash differs from the stored one: the comparison runs
# in the transaction that writes, so a build never reads the stored hashes out first.
DROP_UNCHANGED_SQL = """
DELETE FROM document_staging
WHERE EXISTS (SELECT 1 FROM member_documents AS d
              WHERE d.member_id = document_staging.member_id AND d.content_hash = document_staging.content_hash)
"""
# One statement numbers the batch after the largest sequence number so far. (`WHERE true` lets SQLite
# parse an upsert from a SELECT.) Where the backend rewrites an index entry only when its column is set
# (SQLite), an update leaves the indexed columns (mbi, contract, region) alone, and UPDATE_INDEXED_SQL sets the
# few that changed. Likewise the audience indexes change only in the rows that differ: an incremental build
# touches a few percent of the members, and rewriting their unchanged rows would dirty most index pages.
UPSERT_SQL = """
INSERT INTO member_documents (member_id, mbi, contract_id, region, enrolled, last_touch_epoch, document, content_hash, seq, updated_at)
SELECT member_id, mbi, contract_id, region, enrolled, last_touch_epoch, {json_in}, content_hash,
       (SELECT coalesce(max(seq), 0) FROM member_documents) + row_number() OVER (ORDER BY member_id), :now
FROM document_staging WHERE true
ON CONFLICT (member_id) DO UPDATE SET {indexed_sets}
    enrolled = excluded.enrolled, last_touch_epoch = excluded.last_touch_epoch, document = excluded.document,
    content_hash = excluded.content_hash, seq = excluded.seq, updated_at = excluded.updated_at
"""
INDEXED_SETS = "mbi = excluded.mbi, contract_id = excluded.contract_id, region = excluded.region,"
UPDATE_INDEXED_SQL = """
UPDATE member_documents SET mbi = s.mbi, contract_id = s.contract_id, region = s.region
FROM document_staging AS s
WHERE member_documents.member_id = s.member_id
  AND (member_documents.mbi IS DISTINCT FROM s.mbi OR member_documents.contract_id IS DISTINCT FROM s.contract_id
       OR member_documents.region IS DISTINCT FROM s.region)
"""
REPLACE_INDEX_SQL = """
DELETE FROM member_open_gaps
WHERE member_id IN (SELECT member_id FROM document_staging)
  AND (member_id, measure_code) NOT IN (SELECT member_id, measure_code FROM open_gap_staging);
INSERT INTO member_open_gaps (member_id, measure_code)
SELECT DISTINCT member_id, measure_code FROM open_gap_staging WHERE member_id IN (SELECT member_id FROM document_staging)
ON CONFLICT DO NOTHING;
DELETE FROM member_opt_outs
WHERE member_id IN (SELECT member_id FROM document_staging)
  AND (member_id, channel) NOT IN (SELECT member_id, channel FROM opt_out_staging);
INSERT INTO member_opt_outs (member_id, channel)
SELECT DISTINCT member_id, channel FROM opt_out_staging WHERE member_id IN (SELECT member_id FROM document_staging)
ON CONFLICT DO NOTHING
"""
SET_STATE_SQL = """
INSERT INTO store_state (name, value) VALUES (:name, :value)
ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""

# Audience filters: each is a fixed clause, included only when its parameter is given.
AUDIENCE_FILTERS = {
    "contract_id": "d.contract_id = :contract_id",
    "region": "d.region = :region",
    "touched_before_epoch": "(d.last_touch_epoch IS NULL OR d.last_touch_epoch < :touched_before_epoch)",
}
AUDIENCE_SQL = """
SELECT d.member_id, d.contract_id, d.region, d.last_touch_epoch
FROM member_documents AS d
WHERE d.member_id > :after AND d.enrolled = 1 {filters}
  AND EXISTS (SELECT 1 FROM member_open_gaps AS g WHERE g.member_id = d.member_id {measure_filter})
  AND NOT EXISTS (SELECT 1 FROM member_opt_outs AS o WHERE o.member_id = d.member_id AND o.channel = :channel)
ORDER BY d.member_id
LIMIT :limit
"""


@dataclass(frozen=True)
class Backend:
    name: str
    json_type: str
    identity: str
    json_in: str  # the staged document text as stored
    json_out: str  # the stored document as JSON text
    lock_writers: str | None
    audit_commit: str | None  # how audit transactions commit
    # PostgreSQL writes a new row version, with an entry in every index, on any update (the sequence number's index
    # rules out heap-only updates), so setting the indexed columns in the upsert costs nothing and saves a statement
    # that joins the staged rows with the whole table; SQLite rewrites an index entry only when its column is set.
    upsert_sets_indexed: bool


# Audit rows commit with the same guarantee on both stores: SQLite in WAL mode with synchronous=NORMAL, and
# PostgreSQL with synchronous_commit off for the audit transaction only, keep every committed row through a
# process crash and may lose the last fraction of a second of rows if the machine loses power; neither corrupts.
# A fsync per request would cap the API at one request per disk flush.
# A document write reads the stored hashes before it writes, so SQLite's transaction takes the write lock first: a read
# snapshot cannot be upgraded once another writer (the API's audit) has committed.
SQLITE = Backend("sqlite", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT", "document", "document", "BEGIN IMMEDIATE", None, False)
POSTGRESQL = Backend(
    "postgresql",
    "JSONB",
    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "CAST(document AS JSONB)",
    "CAST(document AS TEXT)",
    "LOCK TABLE member_documents IN SHARE ROW EXCLUSIVE MODE",
    "SET LOCAL synchronous_commit TO off",
    True,
)


def default_url() -> str:
    return os.environ.get(STORE_URL_ENV) or f"sqlite:///{settings.data_dir() / 'documents.sqlite'}"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent after a crash; fsync at checkpoints
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA temp_store=MEMORY")  # the staging tables never touch a file
    cursor.close()


def _engines(url: URL) -> tuple[sa.Engine, sa.Engine, Backend]:
    """A transactional engine for writes, and one whose connections autocommit for reads (one round trip per
    query, no BEGIN and ROLLBACK around it)."""
    backend = url.get_backend_name()
    pool = {"pool_size": 16, "max_overflow": 16, "hide_parameters": True}
    if backend == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        connect = {"check_same_thread": False, "timeout": 30}
        engines = (
            sa.create_engine(url, connect_args=connect, **pool),
            sa.create_engine(url, connect_args=connect | {"isolation_level": None}, pool_reset_on_return=None, **pool),
        )
        for engine in engines:
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        return *engines, SQLITE
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        return (
            sa.create_engine(url, **pool),
            sa.create_engine(url, connect_args={"autocommit": True}, pool_reset_on_return=None, **pool),
            POSTGRESQL,
        )
    raise ValueError(f"{STORE_URL_ENV} must be a sqlite:/// or postgresql:// URL, got the scheme {url.drivername!r}")


_NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@functools.lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    """:name parameters (sqlite3) as %(name)s (psycopg)."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))


@dataclass(frozen=True)
class AuditRow:
    key_id: str
    endpoint: str
    member_ids: Sequence[str]
    requested_at: str = field(default_factory=now_text)


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    salt: str
    secret_hash: str
    scopes: frozenset[str]
    label: str | None
    created_at: str
    revoked_at: str | None


class DocumentStore:
    def __init__(self, url: str | None = None):
        self.url = make_url(url or default_url())
        self.engine, self.read_engine, self.backend = _engines(self.url)
        # Reads are the API's hot path: plain DB-API calls on pooled autocommit connections. The SQL is written
        # with :name parameters (sqlite3's style) and translated once for psycopg.
        self._paramstyle = (lambda sql: sql) if self.backend is SQLITE else _pyformat

    def __repr__(self) -> str:  # never the password
        return f"DocumentStore({self.url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()

    def _read(self, sql: str, params: dict | None = None) -> list[dict]:
        connection = self.read_engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(self._paramstyle(sql), params or {})
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
            cursor.close()
            return rows
        finally:
            connection.close()

    def create_schema(self) -> None:
        with self.engine.begin() as conn:
            if self.backend is POSTGRESQL:  # two processes creating the schema at once must not collide
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7215)"))
            for statement in _statements(SCHEMA_SQL.format(json=self.backend.json_type, identity=self.backend.identity)):
                conn.execute(sa.text(statement))

    # --- documents: written by the asset -------------------------------------------------------------

    def has_documents(self) -> bool:
        return bool(self._read("SELECT 1 AS found FROM member_documents LIMIT 1"))

    def state(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM store_state WHERE name = :name", {"name": name})
        return rows[0]["value"] if rows else None

    def write_documents(self, documents: pa.Table, state: dict[str, str] | None = None) -> int:
        """Upsert those of `documents` (DOCUMENT_COLUMNS plus open_gap_measures and opted_out_channels lists) whose
        content hash differs from the stored one, in one transaction with their audience indexes, each under a new
        sequence number; returns how many were written."""
        written = 0
        with self.engine.begin() as conn:
            if self.backend.lock_writers:
                conn.execute(sa.text(self.backend.lock_writers))
            for statement in _statements(STAGING_SQL):
                conn.execute(sa.text(statement))
            if documents.num_rows:
                self._load(conn, "document_staging", DOCUMENT_COLUMNS, documents.select(DOCUMENT_COLUMNS))
                written = documents.num_rows - conn.execute(sa.text(DROP_UNCHANGED_SQL)).rowcount
            if written:
                self._load(
                    conn,
                    "open_gap_staging",
                    ["member_id", "measure_code"],
                    _explode(documents, "open_gap_measures", "measure_code"),
                )
                self._load(
                    conn, "opt_out_staging", ["member_id", "channel"], _explode(documents, "opted_out_channels", "channel")
                )
                indexed_sets = INDEXED_SETS if self.backend.upsert_sets_indexed else ""
                conn.execute(
                    sa.text(UPSERT_SQL.format(json_in=self.backend.json_in, indexed_sets=indexed_sets)), {"now": now_text()}
                )
                if not self.backend.upsert_sets_indexed:
                    conn.execute(sa.text(UPDATE_INDEXED_SQL))
                for statement in _statements(REPLACE_INDEX_SQL):
                    conn.execute(sa.text(statement))
            for name, value in (state or {}).items():
                conn.execute(sa.text(SET_STATE_SQL), {"name": name, "value": value})
            for statement in _statements(DROP_STAGING_SQL):
                conn.execute(sa.text(statement))
        return written

    def _load(self, conn: Connection, table: str, columns: list[str], rows: pa.Table) -> None:
        if not rows.num_rows:
            return
        if self.backend is POSTGRESQL:
            # COPY is the bulk path; it runs on the same connection, inside the transaction.
            with conn.connection.driver_connection.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in zip(*(rows.column(c).to_pylist() for c in columns)):
                        copy.write_row(row)
        else:
            # sqlite3's executemany over plain tuples: SQLAlchemy's per-row parameter handling costs more than the insert.
            conn.connection.driver_connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                zip(*(rows.column(c).to_pylist() for c in columns)),
            )

    # --- reads: served by the API --------------------------------------------------------------------

    def document(self, *, member_id: str | None = None, mbi: str | None = None) -> tuple[str, str] | None:
        """(member id, the stored document as JSON text) of one member, by member id or MBI."""
        column, value = ("member_id", member_id) if member_id is not None else ("mbi", mbi)
        rows = self._read(
            f"SELECT member_id, {self.backend.json_out} AS document FROM member_documents WHERE {column} = :value "
            "ORDER BY member_id LIMIT 1",
            {"value": value},
        )
        return (rows[0]["member_id"], rows[0]["document"]) if rows else None

    def audience(
        self,
        *,
        channel: str,
        measure_code: str | None = None,
        contract_id: str | None = None,
        region: str | None = None,
        touched_before_epoch: int | None = None,
        after: str = "",
        limit: int = 100,
    ) -> list[dict]:
        """Enrolled members with an open gap (of `measure_code`, when given), not opted out of `channel`, not touched since
        `touched_before_epoch`, in member id order after `after`; each with their open-gap measures."""
        given = {"contract_id": contract_id, "region": region, "touched_before_epoch": touched_before_epoch}
        params = {name: value for name, value in given.items() if value is not None}
        sql = AUDIENCE_SQL.format(
            filters="".join(f" AND {AUDIENCE_FILTERS[name]}" for name in params),
            measure_filter="AND g.measure_code = :measure_code" if measure_code is not None else "",
        )
        params |= {"after": after, "channel": channel, "limit": limit}
        if measure_code is not None:
            params["measure_code"] = measure_code
        rows = self._read(sql, params)
        measures: dict[str, list[str]] = {}
        if rows:
            ids = {f"id{n}": r["member_id"] for n, r in enumerate(rows)}
            for found in self._read(
                f"SELECT member_id, measure_code FROM member_open_gaps WHERE member_id IN "
                f"({', '.join(':' + name for name in ids)}) ORDER BY 1, 2",
                ids,
            ):
                measures.setdefault(found["member_id"], []).append(found["measure_code"])
        return [{**row, "open_gap_measures": measures.get(row["member_id"], [])} for row in rows]

    def changes(self, since: int, limit: int) -> list[dict]:
        """Documents written after sequence number `since`, oldest first."""
        return self._read(
            f"SELECT seq, member_id, updated_at, {self.backend.json_out} AS document FROM member_documents "
            "WHERE seq > :since ORDER BY seq LIMIT :limit",
            {"since": since, "limit": limit},
        )

    def summary(self) -> dict:
        (row,) = self._read("SELECT count(*) AS documents, coalesce(max(seq), 0) AS last_seq FROM member_documents")
        return {"backend": self.backend.name, "documents": int(row["documents"]), "last_seq": int(row["last_seq"])}

    # --- API keys and the audit trail ----------------------------------------------------------------

    def add_key(self, key_id: str, salt: str, secret_hash: str, scopes: Iterable[str], label: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (key_id, salt, secret_hash, scopes, label, created_at) "
                    "VALUES (:key_id, :salt, :secret_hash, :scopes, :label, :created_at)"
                ),
                {
                    "key_id": key_id,
                    "salt": salt,
                    "secret_hash": secret_hash,
                    "scopes": " ".join(sorted(scopes)),
                    "label": label,
                    "created_at": now_text(),
                },
            )

    def revoke_key(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.text("UPDATE api_keys SET revoked_at = :now WHERE key_id = :key_id AND revoked_at IS NULL"),
                {"now": now_text(), "key_id": key_id},
            )
        return result.rowcount == 1

    def key(self, key_id: str) -> ApiKeyRecord | None:
        rows = self._read("SELECT * FROM api_keys WHERE key_id = :key_id", {"key_id": key_id})
        return _key_record(rows[0]) if rows else None

    def keys(self) -> list[ApiKeyRecord]:
        return [_key_record(r) for r in self._read("SELECT * FROM api_keys ORDER BY created_at")]

    def record_accesses(self, rows: Sequence[AuditRow]) -> None:
        """One audit row per request that returned member data: who, when, which endpoint, which members."""
        with self.engine.begin() as conn:
            if self.backend.audit_commit:
                conn.execute(sa.text(self.backend.audit_commit))
            conn.execute(
                sa.text(
                    "INSERT INTO api_audit (key_id, requested_at, endpoint, member_ids, result_count) "
                    "VALUES (:key_id, :requested_at, :endpoint, :member_ids, :result_count)"
                ),
                [
                    {
                        "key_id": r.key_id,
                        "requested_at": r.requested_at,
                        "endpoint": r.endpoint,
                        "member_ids": json.dumps(list(r.member_ids)),
                        "result_count": len(r.member_ids),
                    }
                    for r in rows
                ],
            )

    def audit_trail(self, key_id: str | None = None) -> list[dict]:
        sql = "SELECT key_id, requested_at, endpoint, member_ids, result_count FROM api_audit"
        rows = self._read(
            sql + (" WHERE key_id = :key_id" if key_id else "") + " ORDER BY id", {"key_id": key_id} if key_id else {}
        )
        return [{**r, "member_ids": json.loads(r["member_ids"])} for r in rows]


def _key_record(row) -> ApiKeyRecord:
    return ApiKeyRecord(
        row["key_id"],
        row["salt"],
        row["secret_hash"],
        frozenset(row["scopes"].split()),
        row["label"],
        row["created_at"],
        row["revoked_at"],
    )


def _explode(documents: pa.Table, list_column: str, as_column: str) -> pa.Table:
    """(member_id, value) pairs from a list column, without a Python loop over members."""
    lists = documents.column(list_column).combine_chunks()
    return pa.table(
        {"member_id": documents.column("member_id").take(pc.list_parent_indices(lists)), as_column: pc.list_flatten(lists)}
    )
