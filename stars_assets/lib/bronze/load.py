"""Load one provider's files for one delivery date into bronze, replacing that partition.

A partition is written in one transaction: bronze rows, the audit file manifest and the
bronze-layer quarantine rows for (provider, date) change together, so a crash leaves the
previous state. Inside it, files are read one at a time, each parsed once into a small staging
relation and inserted into bronze straight away (memory holds one file, never the partition); a
file that cannot be used is quarantined and the rest go on. Small JSON-lines files (hourly
micro-batches, up to BATCH_MAX_FILE_BYTES each) are the exception: a dataset's files of the day
are read and parsed together and inserted by one statement, since a few statements per file cost
more than the reading; a batch in which the reader refuses any line is staged file by file instead,
so every outcome, line number and reason is the one the file would have alone. When DuckDB itself fails on a file
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
Files are hashed whole when their size or modification time differs from the manifest; when both
agree, a cheap sampled hash (landing.sample_hash) is compared, so a file rewritten in place with
the same size and time is still seen to change and never keeps stale rows.

Every entry of the landing folder is accounted for in the manifest: files read (loaded,
quarantined, skipped_duplicate) and entries not read with the reason (landing.NOT_READ_STATUSES;
entries whose name gives no date are kept under a NULL partition date). For line formats the
file's physical lines are counted while it is hashed, and every line must be a loaded row, a
rejected row or a skipped (header or blank) line: a line the parser lost is quarantined.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from stars_assets.lib.bronze.landing import (
    LINE_FORMATS,
    MAX_LINE_BYTES,
    NOT_READ_STATUSES,
    FileScan,
    LandedFile,
    content_hash,
    inventory,
    sample_hash,
    scan_file,
)
from stars_assets.lib.bronze.readers import FileRejected, StagedBatch, StagedFile, drop_stage, stage_file, stage_jsonl_batch
from stars_assets.lib.bronze.tables import BRONZE_LINEAGE, FILE_MANIFEST, QUARANTINE
from stars_assets.lib.providers import Dataset, ProviderConfig
from stars_assets.lib.tables import Column, TableSpec, unique_text
from stars_assets.lib.warehouse import ensure_tables as ensure_warehouse_tables
from stars_assets.lib.warehouse import in_transaction

AUDIT_TABLES = (FILE_MANIFEST, QUARANTINE)
MANIFEST_COLUMNS = ", ".join(FILE_MANIFEST.column_names)


@dataclass(frozen=True)
class FileOutcome:
    dataset: str
    file_path: str
    size_bytes: int
    modified_at: datetime
    content_hash: str
    status: str  # loaded | quarantined | skipped_duplicate | one of landing.NOT_READ_STATUSES
    reason: str | None = None
    detail: str | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    extra_columns: tuple[str, ...] = ()
    sample_hash: str | None = None
    line_count: int | None = None  # physical lines (line formats)
    lines_skipped: int | None = None  # header and blank lines (and line breaks inside quoted values)


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
    def files_not_read(self) -> int:
        return sum(f.status in NOT_READ_STATUSES for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.size_bytes for f in self.files if f.status != "skipped_duplicate")

    def reason_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for f in self.files:
            if f.status == "quarantined" or f.status in NOT_READ_STATUSES:
                counts[f.reason] += 1
        return dict(counts)


def bronze_columns(provider: ProviderConfig, dataset: Dataset) -> list[Column]:
    """A bronze table's leading columns: the dataset's columns as delivered (text), the event key's stored for unique values."""
    unique = provider.unique_columns(dataset.name)
    return [unique_text(c.column, "") if c.column in unique else Column(c.column, "VARCHAR") for c in dataset.columns]


def bronze_table(provider: ProviderConfig, dataset: Dataset) -> TableSpec:
    """A dataset's bronze table: its columns as delivered, then the lineage every bronze table ends with."""
    return TableSpec(
        f"bronze.{dataset.name}",
        f"{provider.name} {dataset.name} rows as delivered",
        (*bronze_columns(provider, dataset), *BRONZE_LINEAGE),
    )


def ensure_tables(con: duckdb.DuckDBPyConnection, *providers: ProviderConfig) -> None:
    """The audit tables and the providers' bronze tables; a column declared after a table was created joins it
    (NULL on earlier rows)."""
    ensure_warehouse_tables(con, *AUDIT_TABLES, *(bronze_table(p, d) for p in providers for d in p.datasets))


def files_for_partition(
    provider: ProviderConfig, provider_dir: Path, partition_date: date | None, now: float | None = None
) -> list[LandedFile]:
    """Every entry of the provider's folder whose name gives this delivery date (None: no date)."""
    entries = inventory(provider, provider_dir, time.time() if now is None else now)
    return [e for e in entries if e.partition_date == partition_date]


MANIFEST_SQL = """
SELECT dataset, file_path, size_bytes, modified_at, content_hash, status, reason, detail, rows_loaded,
       rows_rejected, extra_columns, sample_hash, line_count, lines_skipped
FROM audit.file_manifest WHERE provider = $provider AND partition_date IS NOT DISTINCT FROM $day ORDER BY file_path
"""


def manifest_outcomes(con, provider: str, partition_date: date | None) -> dict[str, FileOutcome]:
    """What the manifest holds for the partition (None: the entries without a date), by file path."""
    rows = con.execute(MANIFEST_SQL, {"provider": provider, "day": partition_date}).fetchall()
    return {
        row[1]: FileOutcome(
            *row[:10], extra_columns=tuple(row[10] or ()), sample_hash=row[11], line_count=row[12], lines_skipped=row[13]
        )
        for row in rows
    }


def _hashes_loaded_elsewhere(con, provider: str, partition_date: date) -> dict[str, str]:
    rows = con.execute(
        "SELECT content_hash, min(file_path) FROM audit.file_manifest "
        "WHERE provider = $provider AND status = 'loaded' AND partition_date <> $day GROUP BY 1",
        {"provider": provider, "day": partition_date},
    ).fetchall()
    return dict(rows)


# JSON-lines files up to this size (as delivered) are read together, a day's at once (see _stage_batches).
BATCH_MAX_FILE_BYTES = 1024 * 1024


class _RetryUnbatched(Exception):
    """A statement over a batch of files failed and aborted the transaction: write the partition again file by file."""


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
    now: float | None = None,
    entries: list[LandedFile] | None = None,
) -> PartitionLoad:
    """`entries`: the folder's inventory, when the caller took it once for a range of days (else taken here)."""
    ensure_tables(con, provider)
    if entries is None:
        entries = inventory(provider, Path(landing_root) / provider.name, time.time() if now is None else now)
    stamp = datetime.now(UTC).replace(tzinfo=None)
    _sync_not_read(con, provider, None, [e for e in entries if e.partition_date is None], run_id, stamp)
    dated = [e for e in entries if e.partition_date == partition_date]
    landed = [e for e in dated if e.status is None]
    not_read = [e for e in dated if e.status is not None]
    recorded = manifest_outcomes(con, provider.name, partition_date)
    known = {path: o for path, o in recorded.items() if o.status not in NOT_READ_STATUSES}
    digests: dict[str, str] = {}
    samples: dict[str, str] = {}
    for f in landed:
        previous = known.get(f.relative)
        if previous is None:
            continue
        if (previous.size_bytes, previous.modified_at) == (f.size, f.modified_at):
            samples[f.relative] = sample_hash(f.path, f.size)
            if samples[f.relative] == previous.sample_hash:
                digests[f.relative] = previous.content_hash
                continue
        # Touched, rewritten, or rewritten in place with the same size and time: hash the content.
        digests[f.relative] = content_hash(f.path)
    kept = {r for r, outcome in known.items() if digests.get(r) == outcome.content_hash}
    new = [f for f in landed if f.relative not in known]
    result = PartitionLoad(provider.name, partition_date)

    if not new and kept == set(known):
        result.mode = "unchanged"
        result.files = [
            replace(
                known[f.relative],
                size_bytes=f.size,
                modified_at=f.modified_at,
                sample_hash=samples.get(f.relative) or known[f.relative].sample_hash,
            )
            for f in landed
        ]
        touched = [
            o
            for o in result.files
            if (o.size_bytes, o.modified_at, o.sample_hash)
            != (known[o.file_path].size_bytes, known[o.file_path].modified_at, known[o.file_path].sample_hash)
        ]
        if touched:
            with in_transaction(con):
                for outcome in touched:
                    con.execute(
                        "UPDATE audit.file_manifest SET modified_at = $mtime, sample_hash = $sample WHERE provider = $provider "
                        "AND partition_date = $day AND file_path = $file",
                        {
                            "mtime": outcome.modified_at,
                            "sample": outcome.sample_hash,
                            "provider": provider.name,
                            "day": partition_date,
                            "file": outcome.file_path,
                        },
                    )
        _sync_not_read(con, provider, partition_date, not_read, run_id, stamp)
        result.files += [_not_read_outcome(e) for e in not_read]
        return result

    if known and kept == set(known) and min(f.path.name for f in new) > max(Path(r).name for r in known):
        result.mode = "append"
        to_read = new
    else:
        result.mode = "replace"
        to_read = landed
    failed: dict[str, FileRejected] = {}
    with (
        tempfile.TemporaryDirectory(prefix="stars-bronze-") as folder,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-scan") as scanner,
    ):
        pending = _Scans(scanner, provider, to_read, Path(folder))
        batching = True
        while True:
            try:
                outcomes = _write_partition(
                    con, provider, partition_date, run_id, result.mode, known, to_read, pending, failed, not_read, log, batching
                )
                break
            except _RetryUnbatched:
                batching = False
                if log is not None:
                    log("writing a batch of files failed; writing the partition again file by file")
            except _RetryWithout as retry:
                failed[retry.relative] = retry.rejected
                if log is not None:
                    log(f"{retry.relative}: {retry.rejected}; writing the partition again without it")
            finally:
                _drop_temp_relations(con)  # the batches' staging tables, kept until their INSERT
    written = {o.file_path: o for o in outcomes}
    result.files = [written.get(f.relative) or known[f.relative] for f in landed] + [_not_read_outcome(e) for e in not_read]
    result.files_read = sum(o.status in ("loaded", "quarantined") for o in outcomes)
    result.rows_read = sum(o.rows_loaded + o.rows_rejected for o in outcomes)
    return result


class _Scans:
    """Scans the next file (hash, line count, a gzip file decompressed to a plain copy) while DuckDB
    reads the current one (hashlib and zlib release the GIL); only AHEAD files are scanned ahead, so
    the plain copies waiting on disk stay few. A plain copy is removed once its file is read."""

    AHEAD = 1

    def __init__(self, executor: ThreadPoolExecutor, provider: ProviderConfig, files: list[LandedFile], folder: Path):
        self._executor, self._files, self._folder = executor, files, folder
        self._compression = provider.compression
        self._count_lines = provider.format in LINE_FORMATS
        self._futures: dict[int, Future] = {}

    def _scan(self, number: int) -> tuple[FileScan, str]:
        landed = self._files[number]
        if self._compression == "gzip" and self._count_lines:
            scan = scan_file(landed.path, self._compression, self._count_lines, inflate_to=self._folder / f"{number}.plain")
        else:
            scan = scan_file(landed.path, self._compression, self._count_lines)
        return scan, sample_hash(landed.path, landed.size)

    def result(self, number: int) -> tuple[FileScan, str]:
        for ahead in range(number, min(number + 1 + self.AHEAD, len(self._files))):
            if ahead not in self._futures:
                self._futures[ahead] = self._executor.submit(self._scan, ahead)
        return self._futures[number].result()


def _not_read_outcome(entry: LandedFile) -> FileOutcome:
    # Never hashed: a link is not followed, and a file still being written has no final content yet.
    return FileOutcome(
        entry.dataset.name if entry.dataset else None,
        entry.relative,
        entry.size,
        entry.modified_at,
        None,
        status=entry.status,
        reason=entry.status,
        detail=entry.detail,
    )


NOT_READ_SQL = """
SELECT file_path, status, size_bytes, modified_at FROM audit.file_manifest
WHERE provider = $provider AND partition_date IS NOT DISTINCT FROM $day AND status IN (SELECT unnest($statuses))
ORDER BY file_path
"""


def _sync_not_read(
    con,
    provider: ProviderConfig,
    day: date | None,
    entries: list[LandedFile],
    run_id: str,
    now: datetime,
    in_open_transaction: bool = False,
) -> None:
    """Make the manifest's not-read entries of a partition (or of no date) those in the folder now."""
    params = {"provider": provider.name, "day": day, "statuses": list(NOT_READ_STATUSES)}
    current = [(e.relative, e.status, e.size, e.modified_at) for e in entries]
    if not in_open_transaction and [tuple(r) for r in con.execute(NOT_READ_SQL, params).fetchall()] == current:
        return

    def write():
        con.execute(
            "DELETE FROM audit.file_manifest WHERE provider = $provider AND partition_date IS NOT DISTINCT FROM $day "
            "AND status IN (SELECT unnest($statuses))",
            params,
        )
        con.execute(
            "DELETE FROM audit.quarantine WHERE layer = 'bronze' AND provider = $provider "
            "AND partition_date IS NOT DISTINCT FROM $day AND reason IN (SELECT unnest($statuses))",
            params,
        )
        _write_manifest(
            con, [_not_read_outcome(e) for e in entries], {"provider": provider.name, "day": day, "run_id": run_id, "now": now}
        )

    if in_open_transaction:
        write()
    else:
        with in_transaction(con):
            write()


def _write_partition(
    con,
    provider: ProviderConfig,
    partition_date: date,
    run_id: str,
    mode: str,
    known: dict[str, FileOutcome],
    to_read: list[LandedFile],
    pending: _Scans,
    failed: dict[str, FileRejected],
    not_read: list[LandedFile],
    log,
    batching: bool = True,
) -> list[FileOutcome]:
    now = datetime.now(UTC).replace(tzinfo=None)
    params = {"provider": provider.name, "day": partition_date, "run_id": run_id, "now": now}
    hashes = _hashes_loaded_elsewhere(con, provider.name, partition_date)
    if mode == "append":
        hashes.update({o.content_hash: o.file_path for o in known.values() if o.status == "loaded"})
    outcomes: list[FileOutcome] = []
    # Staged before the transaction (temporary tables only): a batch DuckDB cannot read leaves nothing to undo.
    batches = _stage_batches(con, provider, to_read, pending, failed, hashes) if batching else []
    batched = {relative: (batch, read) for batch, _, files in batches for read, relative in files.items()}
    batch_loaded: dict[str, dict[str, str]] = {}  # stage -> {path read: file} of the batched files loaded
    with in_transaction(con):
        if mode == "replace":
            _delete_partition(con, provider, partition_date)
        for number, landed in enumerate(to_read):
            scan, sample = pending.result(number)
            if _changed_since_listed(landed):
                # The upload goes on while we read: leave the file to a later run, as the listing would have.
                outcomes.append(
                    FileOutcome(
                        landed.dataset.name,
                        landed.relative,
                        landed.size,
                        landed.modified_at,
                        None,
                        status="still_being_written",
                        reason="still_being_written",
                        detail="its size or modification time changed while it was read; read by a later run",
                    )
                )
                continue
            base = dict(
                dataset=landed.dataset.name,
                file_path=landed.relative,
                size_bytes=landed.size,
                modified_at=landed.modified_at,
                content_hash=scan.content_hash,
                sample_hash=sample,
                line_count=scan.lines,
            )
            if scan.content_hash in hashes:
                outcome = FileOutcome(
                    **base,
                    status="skipped_duplicate",
                    reason="duplicate_file",
                    detail=f"same content as {hashes[scan.content_hash]}",
                )
            elif landed.size == 0:
                outcome = FileOutcome(**base, status="quarantined", reason="empty_file", detail="zero bytes")
            elif scan.problem is not None:
                outcome = FileOutcome(**base, status="quarantined", reason=scan.problem[0], detail=scan.problem[1])
            elif landed.relative in failed:
                rejected = failed[landed.relative]
                outcome = FileOutcome(**base, status="quarantined", reason=rejected.reason, detail=rejected.detail)
            else:
                outcome = None
                if landed.relative in batched:
                    batch, read = batched[landed.relative]
                    outcome = _batched_outcome(batch.files.get(read), scan, base)
                    if outcome is not None:
                        batch_loaded.setdefault(batch.stage, {})[read] = landed.relative
                if outcome is None:  # not batched, or its lines are not all accounted for: staged alone
                    outcome = _load_file(con, provider, landed, scan, f"stage_{number}", base, params)
                if outcome.status == "loaded":
                    hashes[scan.content_hash] = landed.relative
            if scan.inflated is not None and landed.relative not in batched:
                # A second pass (see _RetryWithout) reads the file itself; a batch's plain copies are read by its INSERT.
                scan.inflated.unlink(missing_ok=True)
            outcomes.append(outcome)
            if log is not None:
                log(
                    f"{landed.relative}: {outcome.status} {outcome.reason or ''} rows={outcome.rows_loaded} rejected={outcome.rows_rejected}"
                )
        for batch, dataset, _ in batches:
            if batch.stage in batch_loaded:
                try:
                    _insert_batch(con, dataset, batch, batch_loaded[batch.stage], params)
                except duckdb.Error as exc:
                    raise _RetryUnbatched() from exc
        if mode == "replace":  # the partition's manifest and quarantine were deleted whole: one INSERT writes them
            _write_manifest(con, outcomes + [_not_read_outcome(e) for e in not_read], params)
        else:
            _sync_not_read(con, provider, partition_date, not_read, run_id, now, in_open_transaction=True)
            _write_manifest(con, outcomes, params)
    return outcomes


def _stage_batches(
    con, provider: ProviderConfig, to_read: list[LandedFile], pending: _Scans, failed: dict, hashes: dict[str, str]
) -> list[tuple[StagedBatch, Dataset, dict[str, str]]]:
    """Stage the partition's small JSON-lines files of each dataset together (a day of hourly files costs the
    statements of one file): (batch, dataset, {path read: file}). Only files the per-file checks would read
    go in; a batch the reader refuses any line of is dropped, and its files are staged one at a time."""
    if provider.format != "jsonl":
        return []
    by_dataset: dict[str, tuple[Dataset, dict[str, str]]] = {}
    for number, landed in enumerate(to_read):
        if not 0 < landed.size <= BATCH_MAX_FILE_BYTES or landed.relative in failed:
            continue
        scan, _ = pending.result(number)
        if scan.problem is not None or scan.long_lines or scan.content_hash in hashes:
            continue
        read = scan.inflated if scan.inflated is not None else landed.path
        if provider.compression == "gzip" and scan.inflated is None:
            continue
        by_dataset.setdefault(landed.dataset.name, (landed.dataset, {}))[1][str(read)] = landed.relative
    reader = provider.model_copy(update={"compression": "none"}) if provider.compression == "gzip" else provider
    batches = []
    for number, (dataset, files) in enumerate(by_dataset.values()):
        if len(files) < 2:
            continue
        batch = stage_jsonl_batch(con, reader, dataset, [Path(p) for p in files], f"batch_{number}")
        if batch is None:
            drop_stage(con, f"batch_{number}")  # the other datasets' batches stay staged until their INSERT
            continue
        batches.append((batch, dataset, files))
    return batches


def _batched_outcome(staged: StagedFile | None, scan: FileScan, base: dict) -> FileOutcome | None:
    """A batched file's outcome; None when its lines are not all accounted for (it is then staged alone,
    where the difference is named)."""
    if staged is None or staged.lines_accounted != scan.lines:
        return None
    return FileOutcome(
        **base,
        status="loaded",
        rows_loaded=staged.rows,
        rows_rejected=staged.rejected_rows,
        extra_columns=staged.extra_columns,
        lines_skipped=staged.lines_skipped,
    )


def _bronze_row_select(dataset: Dataset, source_file: str) -> str:
    """The SELECT list that makes staged rows bronze rows: the declared columns, lineage, and the record hash (md5 of
    the declared columns), alike for a file staged alone or in a batch. `source_file` is the SQL naming the file."""
    columns = [c.column for c in dataset.columns]
    hashed = ", ".join(f"coalesce({c}, chr(0))" for c in columns)
    return (
        f"{', '.join(columns)}, _extra, {source_file} AS _source_file, _source_row, $day AS _partition_date, "
        f"$now AS _ingested_at, md5(concat_ws(chr(31), {hashed})) AS _record_hash"
    )


def _insert_batch(con, dataset: Dataset, batch: StagedBatch, files: dict[str, str], params: dict) -> None:
    """The loaded batched files' rows into bronze and their rejected rows into the quarantine: one INSERT each."""
    bound = {"read": list(files), "files": list(files.values())}
    con.execute(
        f"""
        INSERT INTO bronze.{dataset.name}
        SELECT {_bronze_row_select(dataset, "$files[list_position($read, _file)]")}
        FROM ({batch.rows_select(dataset)}) AS staged
        """,
        {**bound, "day": params["day"], "now": params["now"]},
    )
    if not any(batch.files[read].rejected_rows for read in files):
        return
    con.execute(
        f"""
        INSERT INTO audit.quarantine
        SELECT 'bronze', $provider, $dataset, $day, $files[list_position($read, _file)], source_row, reason, detail, raw_text,
               $run_id, $now
        FROM ({batch.rejects_select()}) AS rejects
        """,
        {**params, **bound, "dataset": dataset.name},
    )


def _changed_since_listed(landed: LandedFile) -> bool:
    try:
        info = landed.path.stat()
    except OSError:
        return True
    modified_at = datetime.fromtimestamp(info.st_mtime, tz=UTC).replace(tzinfo=None)
    return (info.st_size, modified_at) != (landed.size, landed.modified_at)


def _transaction_usable(con) -> bool:
    try:
        con.execute("SELECT 1")
    except duckdb.Error:
        return False
    return True


def _load_file(
    con, provider: ProviderConfig, landed: LandedFile, scan: FileScan, stage: str, base: dict, params: dict
) -> FileOutcome:
    """Parse one file and insert its rows and rejects; a file DuckDB cannot read aborts the transaction."""
    path, reader = landed.path, provider
    if scan.inflated is not None and scan.inflated.exists():  # read the scan's plain copy: decompress once
        path, reader = scan.inflated, provider.model_copy(update={"compression": "none"})
    try:
        staged = stage_file(con, reader, landed.dataset, path, stage)
        lines_skipped, lines_lost = _account_for_lines(con, provider, staged, scan)
    except (FileRejected, duckdb.Error, RecursionError, ValueError, TypeError, KeyError, IndexError, OSError, MemoryError) as exc:
        # Whatever a vendor's bytes make a parser do, it fails this file only, with a reason naming it.
        rejected = (
            exc
            if isinstance(exc, FileRejected)
            else FileRejected("unreadable_file", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500])
        )
        if not _transaction_usable(con):
            raise _RetryWithout(landed.relative, rejected) from exc
        drop_stage(con, stage)  # this file's relations only: the batches' stay staged until their INSERT
        return FileOutcome(**base, status="quarantined", reason=rejected.reason, detail=rejected.detail)
    try:
        _insert_staged(con, landed.dataset, landed.relative, staged, params, has_rejects=bool(staged.rejected_rows + lines_lost))
    except duckdb.Error as exc:
        raise _RetryWithout(landed.relative, FileRejected("unreadable_file", str(exc).splitlines()[0])) from exc
    drop_stage(con, stage)
    reason, detail = staged.flag or (None, None)
    return FileOutcome(
        **base,
        status="loaded",
        reason=reason,
        detail=detail,
        rows_loaded=staged.rows,
        rows_rejected=staged.rejected_rows + lines_lost,
        extra_columns=staged.extra_columns,
        lines_skipped=lines_skipped,
    )


def _account_for_lines(con, provider: ProviderConfig, staged: StagedFile, scan: FileScan) -> tuple[int | None, int]:
    """Every physical line of a line-format file is a row, a rejected row or a skipped line.

    The parser may lose a line far longer than its limit without a trace; the scan measured every
    such line. A lost line after the last line the parser returned is added as a rejected row
    (`line_too_long`); a line lost before it would shift the line numbers of the rows after it,
    so the file is quarantined instead. Returns the lines skipped (header, blank lines) and lost."""
    if scan.lines is None or staged.lines_accounted is None:
        return None, 0
    reported = (
        {row[0] for row in con.execute(f"SELECT DISTINCT source_row FROM {staged.stage}_rejects").fetchall()}
        if scan.long_lines
        else set()
    )
    lost = [(line, size) for line, size in scan.long_lines if line not in reported]
    if any(line <= staged.last_line for line, _ in lost):
        raise FileRejected("unaccounted_lines", f"the parser skipped line {lost[0][0]} ({lost[0][1]} bytes) without a trace")
    for line, size in lost:
        con.execute(
            f"INSERT INTO {staged.stage}_rejects VALUES ($line, 'line_too_long', $detail, NULL)",
            {"line": line, "detail": f"line of {size} bytes is longer than the {MAX_LINE_BYTES}-byte limit"},
        )
    accounted = staged.lines_accounted + len(lost)
    skipped = scan.lines - accounted + staged.lines_skipped
    if provider.format == "jsonl" and accounted != scan.lines:
        # Every JSON-lines line is read as text (blank ones too): a difference is a lost line.
        raise FileRejected("unaccounted_lines", f"the file has {scan.lines} lines, the parser accounted for {accounted}")
    if accounted > scan.lines:
        raise FileRejected("unaccounted_lines", f"the file has {scan.lines} lines, the parser returned {accounted}")
    return skipped, len(lost)


def _delete_partition(con, provider: ProviderConfig, partition_date: date) -> None:
    for dataset in provider.datasets:
        con.execute(f"DELETE FROM bronze.{dataset.name} WHERE _partition_date = $day", {"day": partition_date})
    con.execute(
        "DELETE FROM audit.file_manifest WHERE provider = $provider AND partition_date = $day",
        {"provider": provider.name, "day": partition_date},
    )
    con.execute(
        "DELETE FROM audit.quarantine WHERE layer = 'bronze' AND provider = $provider AND partition_date = $day",
        {"provider": provider.name, "day": partition_date},
    )


def _insert_staged(con, dataset: Dataset, relative: str, staged: StagedFile, params: dict, has_rejects: bool = True) -> None:
    source, source_params = staged.source
    con.execute(
        f"""
        INSERT INTO bronze.{dataset.name}
        SELECT {_bronze_row_select(dataset, "$file")}
        FROM ({source}) AS staged
        """,
        {**source_params, "file": relative, "day": params["day"], "now": params["now"]},
    )
    if not has_rejects:
        return
    con.execute(
        f"""
        INSERT INTO audit.quarantine
        SELECT 'bronze', $provider, $dataset, $day, $file, source_row, reason, detail, raw_text, $run_id, $now
        FROM {staged.stage}_rejects
        """,
        {**params, "dataset": dataset.name, "file": relative},
    )


MANIFEST_INSERT_SQL = f"""
INSERT INTO audit.file_manifest ({MANIFEST_COLUMNS})
SELECT $provider, dataset, $day, file_path, size_bytes, modified_at, content_hash, status, reason, detail,
       rows_loaded, rows_rejected, extra_columns, $run_id, $now, sample_hash, line_count, lines_skipped
FROM _manifest_outcomes
"""

FILE_QUARANTINE_INSERT_SQL = f"""
INSERT INTO audit.quarantine
SELECT 'bronze', $provider, dataset, $day, file_path, NULL, reason, detail, NULL, $run_id, $now
FROM _manifest_outcomes WHERE status = 'quarantined' OR status IN ({", ".join(f"'{s}'" for s in NOT_READ_STATUSES if s != "still_being_written")})
"""

# The manifest columns a file's outcome carries (FileOutcome's fields); the others are the partition's parameters.
OUTCOME_COLUMNS = tuple(c for c in FILE_MANIFEST.column_names if c not in ("provider", "partition_date", "run_id", "loaded_at"))
OUTCOME_SCHEMA_SQL = f"SELECT {', '.join(OUTCOME_COLUMNS)} FROM audit.file_manifest LIMIT 0"


def _write_manifest(con, outcomes: list[FileOutcome], params: dict) -> None:
    """The outcomes into the manifest, and the files quarantined or refused into the quarantine: one INSERT
    each for the whole partition (a statement per file was most of the cost of many small files)."""
    if not outcomes:
        return
    schema = con.sql(OUTCOME_SCHEMA_SQL).to_arrow_table().schema  # the manifest's own column types
    table = pa.Table.from_pylist(
        [{**{c: getattr(o, c) for c in OUTCOME_COLUMNS}, "extra_columns": list(o.extra_columns)} for o in outcomes],
        schema=schema,
    )
    con.register("_manifest_outcomes", table)
    try:
        con.execute(MANIFEST_INSERT_SQL, params)
        con.execute(FILE_QUARANTINE_INSERT_SQL, params)
    finally:
        con.unregister("_manifest_outcomes")


def _drop_temp_relations(con) -> None:
    relations = con.execute(
        "SELECT 'VIEW', view_name FROM duckdb_views() WHERE temporary AND NOT internal "
        "UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() WHERE temporary"
    ).fetchall()
    for kind, name in relations:
        con.execute(f"DROP {kind} IF EXISTS temp.main.{name}")
