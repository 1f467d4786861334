"""Load one provider's files for one delivery date into bronze, replacing that partition.

Files are staged one at a time (a bad file is quarantined and the rest go on), then the
partition is swapped in a single transaction: bronze rows, the audit file manifest and the
bronze-layer quarantine rows for (provider, date) are deleted and re-inserted together, so a
re-run replaces exactly that partition and a crash leaves the previous state.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
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


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _hashes_loaded_elsewhere(con, provider: str, partition_date: date) -> dict[str, str]:
    rows = con.execute(
        "SELECT content_hash, min(file_path) FROM audit.file_manifest "
        "WHERE provider = $provider AND status = 'loaded' AND partition_date <> $day GROUP BY 1",
        {"provider": provider, "day": partition_date},
    ).fetchall()
    return dict(rows)


def load_partition(
    con: duckdb.DuckDBPyConnection,
    provider: ProviderConfig,
    landing_root: Path,
    partition_date: date,
    run_id: str,
    log=None,
) -> PartitionLoad:
    ensure_tables(con, provider)
    provider_dir = Path(landing_root) / provider.name
    result = PartitionLoad(provider.name, partition_date)
    known_hashes = _hashes_loaded_elsewhere(con, provider.name, partition_date)
    staged: list[tuple[Dataset, str, StagedFile]] = []
    for number, (dataset, path) in enumerate(files_for_partition(provider, provider_dir, partition_date)):
        relative = f"{provider.name}/{path.name}"
        stat = path.stat()
        digest = content_hash(path)
        base = dict(
            dataset=dataset.name, file_path=relative, size_bytes=stat.st_size,
            modified_at=datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).replace(tzinfo=None),
            content_hash=digest,
        )
        if digest in known_hashes:
            result.files.append(FileOutcome(**base, status="skipped_duplicate", reason="duplicate_file",
                                            detail=f"same content as {known_hashes[digest]}"))
            continue
        if stat.st_size == 0:
            result.files.append(FileOutcome(**base, status="quarantined", reason="empty_file", detail="zero bytes"))
            continue
        stage = f"stage_{number}"
        try:
            staged_file = stage_file(con, provider, dataset, path, stage)
        except FileRejected as rejected:
            result.files.append(FileOutcome(**base, status="quarantined", reason=rejected.reason, detail=rejected.detail))
        else:
            known_hashes[digest] = relative
            staged.append((dataset, relative, staged_file))
            result.files.append(FileOutcome(**base, status="loaded", rows_loaded=staged_file.rows,
                                            rows_rejected=staged_file.rejected_rows,
                                            extra_columns=staged_file.extra_columns))
        if log is not None:
            outcome = result.files[-1]
            log(f"{relative}: {outcome.status} {outcome.reason or ''} rows={outcome.rows_loaded} rejected={outcome.rows_rejected}")
    _swap_partition(con, provider, partition_date, run_id, result, staged)
    return result


def _swap_partition(con, provider: ProviderConfig, partition_date: date, run_id: str, result: PartitionLoad, staged) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    params = {"provider": provider.name, "day": partition_date, "run_id": run_id, "now": now}
    try:
        with in_transaction(con):
            _write_partition(con, provider, partition_date, result, staged, params, now)
    finally:
        _drop_temp_tables(con)


def _write_partition(con, provider: ProviderConfig, partition_date: date, result: PartitionLoad, staged, params: dict, now: datetime) -> None:
    for dataset in provider.datasets:
        con.execute(f"DELETE FROM bronze.{dataset.name} WHERE _partition_date = $day", {"day": partition_date})
    con.execute("DELETE FROM audit.file_manifest WHERE provider = $provider AND partition_date = $day",
                {"provider": provider.name, "day": partition_date})
    con.execute("DELETE FROM audit.quarantine WHERE layer = 'bronze' AND provider = $provider AND partition_date = $day",
                {"provider": provider.name, "day": partition_date})
    for dataset, relative, staged_file in staged:
        columns = [c.column for c in dataset.columns]
        hashed = ", ".join(f"coalesce({c}, chr(0))" for c in columns)
        con.execute(
            f"""
            INSERT INTO bronze.{dataset.name}
            SELECT {', '.join(columns)}, _extra, $file AS _source_file, _source_row, $day AS _partition_date,
                   $now AS _ingested_at, md5(concat_ws(chr(31), {hashed})) AS _record_hash
            FROM {staged_file.stage}
            """,
            {"file": relative, "day": partition_date, "now": now},
        )
        con.execute(
            f"""
            INSERT INTO audit.quarantine
            SELECT 'bronze', $provider, $dataset, $day, $file, source_row, reason, detail, raw_text, $run_id, $now
            FROM {staged_file.stage}_rejects
            """,
            {**params, "dataset": dataset.name, "file": relative},
        )
    for outcome in result.files:
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


def _drop_temp_tables(con) -> None:
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall():
        con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")

