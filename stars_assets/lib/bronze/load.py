"""Load one provider's files for one delivery date into bronze, replacing that partition.

A partition is written in one transaction: bronze rows, the audit file manifest and the
bronze-layer quarantine rows for (provider, date) change together, so a crash leaves the
previous state. Inside it, files are read one at a time, each parsed once into a small staging
relation and inserted into bronze straight away (memory holds one file, never the partition); a
file that cannot be used is quarantined and the rest go on. When DuckDB itself fails on a file
(a truncated gzip found at its end, an unreadable file) the transaction is rolled back and the
partition is written again without that file, which is quarantined with the error.

What a run does is decided from the manifest (path, size, modification time, content hash):
  unchanged  every file has the size and modification time in the manifest: nothing is read,
             hashed or written (a file only touched keeps its content hash: also unchanged)
  append     the known files are untouched and new files sort after all of them (a vendor's
             correction or a late second file): only the new files are read and added, which
             gives exactly the rows, manifest and quarantine a full rewrite would
  replace    anything else (a file changed or was removed, or a new file sorts before a known
             one): the partition is rewritten from all its files; re-materializing a partition
             replaces exactly that partition
Files are hashed only when their size or modification time differs from the manifest.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from stars_assets.lib.bronze.readers import FileRejected, StagedFile, stage_file
from stars_assets.lib.providers import Dataset, ProviderConfig
from stars_assets.lib.warehouse import in_transaction

AUDIT_DDL = """
CREATE SCHEMA IF NOT EXISTS bronze;
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.file_manifest (
    provider VARCHAR, dataset VARCHAR, partition_date DATE, file_path VARCHAR, size_bytes BIGINT,
    modified_at TIMESTAMP, content_hash VARCHAR, status VARCHAR, reason VARCHAR, detail VARCHAR,
    rows_loaded BIGINT, rows_rejected BIGINT, extra_columns VARCHAR[], run_id VARCHAR, loaded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS audit.quarantine (
    layer VARCHAR, provider VARCHAR, dataset VARCHAR, partition_date DATE, source_file VARCHAR,
    source_row BIGINT, reason VARCHAR, detail VARCHAR, raw_text VARCHAR, run_id VARCHAR, recorded_at TIMESTAMP
);
"""

LINEAGE_COLUMNS = (
    "_extra VARCHAR, _source_file VARCHAR, _source_row BIGINT, _partition_date DATE, "
    "_ingested_at TIMESTAMP, _record_hash VARCHAR"
)


@dataclass(frozen=True)
class FileOutcome:
    dataset: str
    file_path: str
    size_bytes: int
    modified_at: datetime
    content_hash: str
    status: str  # loaded | quarantined | skipped_duplicate
    reason: str | None = None
    detail: str | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    extra_columns: tuple[str, ...] = ()


@dataclass
class PartitionLoad:
    provider: str
    partition_date: date
    files: list[FileOutcome] = field(default_factory=list)
    mode: str = "replace"  # unchanged | append | replace
    files_read: int = 0  # files parsed in this run
    rows_read: int = 0  # rows loaded or rejected from the files parsed in this run

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def files_quarantined(self) -> int:
        return sum(f.status == "quarantined" for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.size_bytes for f in self.files if f.status != "skipped_duplicate")

    def reason_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for f in self.files:
            if f.status == "quarantined":
                counts[f.reason] += 1
        return dict(counts)


@dataclass(frozen=True)
class LandedFile:
    dataset: Dataset
    path: Path
    relative: str  # <provider>/<file name>, as the manifest and lineage columns name it
    size: int
    modified_at: datetime


def bronze_table_ddl(dataset: Dataset) -> str:
    columns = ", ".join(f"{c.column} VARCHAR" for c in dataset.columns)
    return f"CREATE TABLE IF NOT EXISTS bronze.{dataset.name} ({columns}, {LINEAGE_COLUMNS})"


def ensure_tables(con: duckdb.DuckDBPyConnection, provider: ProviderConfig) -> None:
    con.execute(AUDIT_DDL)
    for dataset in provider.datasets:
        con.execute(bronze_table_ddl(dataset))


def files_for_partition(provider: ProviderConfig, provider_dir: Path, partition_date: date) -> list[tuple[Dataset, Path]]:
    """The provider's files whose names carry this delivery date, in name order."""
    if not provider_dir.is_dir():
        return []
    found = []
    for path in sorted(p for p in provider_dir.iterdir() if p.is_file()):
        for dataset in provider.datasets:
            if dataset.matches(path.name) == partition_date:
                found.append((dataset, path))
                break
    return found


def landed_files(provider: ProviderConfig, provider_dir: Path, partition_date: date) -> list[LandedFile]:
    landed = []
    for dataset, path in files_for_partition(provider, provider_dir, partition_date):
        stat = path.stat()
        modified_at = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).replace(tzinfo=None)
        landed.append(LandedFile(dataset, path, f"{provider.name}/{path.name}", stat.st_size, modified_at))
    return landed


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


MANIFEST_SQL = """
SELECT dataset, file_path, size_bytes, modified_at, content_hash, status, reason, detail, rows_loaded,
       rows_rejected, extra_columns
FROM audit.file_manifest WHERE provider = $provider AND partition_date = $day ORDER BY file_path
"""


def manifest_outcomes(con, provider: str, partition_date: date) -> dict[str, FileOutcome]:
    """What the manifest holds for the partition, by file path."""
    rows = con.execute(MANIFEST_SQL, {"provider": provider, "day": partition_date}).fetchall()
    return {row[1]: FileOutcome(*row[:10], extra_columns=tuple(row[10] or ())) for row in rows}


def _hashes_loaded_elsewhere(con, provider: str, partition_date: date) -> dict[str, str]:
    rows = con.execute(
        "SELECT content_hash, min(file_path) FROM audit.file_manifest "
        "WHERE provider = $provider AND status = 'loaded' AND partition_date <> $day GROUP BY 1",
        {"provider": provider, "day": partition_date},
    ).fetchall()
    return dict(rows)


class _RetryWithout(Exception):
    """DuckDB failed on a file and aborted the transaction: write the partition again without it."""

    def __init__(self, relative: str, rejected: FileRejected):
        super().__init__(relative)
        self.relative = relative
        self.rejected = rejected


def load_partition(
    con: duckdb.DuckDBPyConnection,
    provider: ProviderConfig,
    landing_root: Path,
    partition_date: date,
    run_id: str,
    log=None,
) -> PartitionLoad:
    ensure_tables(con, provider)
    landed = landed_files(provider, Path(landing_root) / provider.name, partition_date)
    known = manifest_outcomes(con, provider.name, partition_date)
    digests: dict[str, str] = {}
    for f in landed:
        previous = known.get(f.relative)
        if previous is not None and (previous.size_bytes, previous.modified_at) == (f.size, f.modified_at):
            digests[f.relative] = previous.content_hash
        elif previous is not None:
            digests[f.relative] = content_hash(f.path)  # touched or rewritten: did the content change?
    kept = {r for r, outcome in known.items() if digests.get(r) == outcome.content_hash}
    new = [f for f in landed if f.relative not in known]
    result = PartitionLoad(provider.name, partition_date)

    if not new and kept == set(known):
        result.mode = "unchanged"
        result.files = [replace(known[f.relative], size_bytes=f.size, modified_at=f.modified_at) for f in landed]
        touched = [o for o in result.files if (o.size_bytes, o.modified_at) != (known[o.file_path].size_bytes, known[o.file_path].modified_at)]
        if touched:
            with in_transaction(con):
                for outcome in touched:
                    con.execute("UPDATE audit.file_manifest SET modified_at = $mtime WHERE provider = $provider "
                                "AND partition_date = $day AND file_path = $file",
                                {"mtime": outcome.modified_at, "provider": provider.name, "day": partition_date,
                                 "file": outcome.file_path})
        return result

    if known and kept == set(known) and min(f.path.name for f in new) > max(Path(r).name for r in known):
        result.mode = "append"
        to_read = new
    else:
        result.mode = "replace"
        to_read = landed
    failed: dict[str, FileRejected] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-hash") as hasher:
        # Hash the next files while DuckDB reads the current one (hashlib releases the GIL).
        pending = {f.relative: hasher.submit(content_hash, f.path) for f in to_read if f.relative not in digests}
        while True:
            try:
                outcomes = _write_partition(con, provider, partition_date, run_id, result.mode, known, to_read,
                                            digests, pending, failed, log)
                break
            except _RetryWithout as retry:
                failed[retry.relative] = retry.rejected
                if log is not None:
                    log(f"{retry.relative}: {retry.rejected}; writing the partition again without it")
    written = {o.file_path: o for o in outcomes}
    result.files = [written.get(f.relative) or known[f.relative] for f in landed]
    result.files_read = sum(o.status != "skipped_duplicate" for o in outcomes)
    result.rows_read = sum(o.rows_loaded + o.rows_rejected for o in outcomes)
    return result


def _write_partition(con, provider: ProviderConfig, partition_date: date, run_id: str, mode: str,
                     known: dict[str, FileOutcome], to_read: list[LandedFile], digests: dict[str, str],
                     pending: dict[str, Future], failed: dict[str, FileRejected], log) -> list[FileOutcome]:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    params = {"provider": provider.name, "day": partition_date, "run_id": run_id, "now": now}
    hashes = _hashes_loaded_elsewhere(con, provider.name, partition_date)
    if mode == "append":
        hashes.update({o.content_hash: o.file_path for o in known.values() if o.status == "loaded"})
    outcomes: list[FileOutcome] = []
    with in_transaction(con):
        if mode == "replace":
            _delete_partition(con, provider, partition_date)
        for number, landed in enumerate(to_read):
            if landed.relative not in digests:
                digests[landed.relative] = pending[landed.relative].result()
            digest = digests[landed.relative]
            base = dict(dataset=landed.dataset.name, file_path=landed.relative, size_bytes=landed.size,
                        modified_at=landed.modified_at, content_hash=digest)
            if digest in hashes:
                outcome = FileOutcome(**base, status="skipped_duplicate", reason="duplicate_file",
                                      detail=f"same content as {hashes[digest]}")
            elif landed.size == 0:
                outcome = FileOutcome(**base, status="quarantined", reason="empty_file", detail="zero bytes")
            elif landed.relative in failed:
                rejected = failed[landed.relative]
                outcome = FileOutcome(**base, status="quarantined", reason=rejected.reason, detail=rejected.detail)
            else:
                outcome = _load_file(con, provider, landed, f"stage_{number}", base, params)
                if outcome.status == "loaded":
                    hashes[digest] = landed.relative
            outcomes.append(outcome)
            if log is not None:
                log(f"{landed.relative}: {outcome.status} {outcome.reason or ''} rows={outcome.rows_loaded} rejected={outcome.rows_rejected}")
        _write_manifest(con, outcomes, params)
    return outcomes


def _transaction_usable(con) -> bool:
    try:
        con.execute("SELECT 1")
    except duckdb.Error:
        return False
    return True


def _load_file(con, provider: ProviderConfig, landed: LandedFile, stage: str, base: dict, params: dict) -> FileOutcome:
    """Parse one file and insert its rows and rejects; a file DuckDB cannot read aborts the transaction."""
    try:
        staged = stage_file(con, provider, landed.dataset, landed.path, stage)
    except FileRejected as rejected:
        if not _transaction_usable(con):
            raise _RetryWithout(landed.relative, rejected) from rejected
        _drop_temp_relations(con)
        return FileOutcome(**base, status="quarantined", reason=rejected.reason, detail=rejected.detail)
    try:
        _insert_staged(con, landed.dataset, landed.relative, staged, params)
    except duckdb.Error as exc:
        raise _RetryWithout(landed.relative, FileRejected("unreadable_file", str(exc).splitlines()[0])) from exc
    _drop_temp_relations(con)
    return FileOutcome(**base, status="loaded", rows_loaded=staged.rows, rows_rejected=staged.rejected_rows,
                       extra_columns=staged.extra_columns)


def _delete_partition(con, provider: ProviderConfig, partition_date: date) -> None:
    for dataset in provider.datasets:
        con.execute(f"DELETE FROM bronze.{dataset.name} WHERE _partition_date = $day", {"day": partition_date})
    con.execute("DELETE FROM audit.file_manifest WHERE provider = $provider AND partition_date = $day",
                {"provider": provider.name, "day": partition_date})
    con.execute("DELETE FROM audit.quarantine WHERE layer = 'bronze' AND provider = $provider AND partition_date = $day",
                {"provider": provider.name, "day": partition_date})


def _insert_staged(con, dataset: Dataset, relative: str, staged: StagedFile, params: dict) -> None:
    columns = [c.column for c in dataset.columns]
    hashed = ", ".join(f"coalesce({c}, chr(0))" for c in columns)
    source, source_params = staged.source
    con.execute(
        f"""
        INSERT INTO bronze.{dataset.name}
        SELECT {', '.join(columns)}, _extra, $file AS _source_file, _source_row, $day AS _partition_date,
               $now AS _ingested_at, md5(concat_ws(chr(31), {hashed})) AS _record_hash
        FROM ({source}) AS staged
        """,
        {**source_params, "file": relative, "day": params["day"], "now": params["now"]},
    )
    con.execute(
        f"""
        INSERT INTO audit.quarantine
        SELECT 'bronze', $provider, $dataset, $day, $file, source_row, reason, detail, raw_text, $run_id, $now
        FROM {staged.stage}_rejects
        """,
        {**params, "dataset": dataset.name, "file": relative},
    )


def _write_manifest(con, outcomes: list[FileOutcome], params: dict) -> None:
    for outcome in outcomes:
        con.execute(
            "INSERT INTO audit.file_manifest VALUES "
            "($provider, $dataset, $day, $file, $size, $mtime, $hash, $status, $reason, $detail, $rows, $rejected, $extra, $run_id, $now)",
            {**params, "dataset": outcome.dataset, "file": outcome.file_path, "size": outcome.size_bytes,
             "mtime": outcome.modified_at, "hash": outcome.content_hash, "status": outcome.status,
             "reason": outcome.reason, "detail": outcome.detail, "rows": outcome.rows_loaded,
             "rejected": outcome.rows_rejected, "extra": list(outcome.extra_columns)},
        )
        if outcome.status == "quarantined":
            con.execute(
                "INSERT INTO audit.quarantine VALUES ('bronze', $provider, $dataset, $day, $file, NULL, $reason, $detail, NULL, $run_id, $now)",
                {**params, "dataset": outcome.dataset, "file": outcome.file_path, "reason": outcome.reason, "detail": outcome.detail},
            )


def _drop_temp_relations(con) -> None:
    for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall():
        con.execute(f"DROP VIEW IF EXISTS temp.main.{name}")
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall():
        con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
