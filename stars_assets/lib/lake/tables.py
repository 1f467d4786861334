"""Reading the lake: where tables live, which exist, their versions and history, time travel, retention."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from stars_assets import settings
from stars_assets.lib.lake.errors import UnknownTableError, UnknownVersionError

log = logging.getLogger(__name__)

LAYERS = ("silver", "gold", "cms", "model", "quality")
# Keys the pipeline writes into each commit's metadata (Delta commitInfo), read back by history() and publish.
META_PARTITIONS = "stars.partitions"  # JSON list of the partitions this commit replaced
META_ROWS = "stars.rows"  # JSON {partition: rows} for the partitions this commit replaced
META_FINGERPRINTS = "stars.fingerprints"  # JSON {partition: fingerprint} of every partition in the table after the commit
META_CONTAINS_PHI = "stars.contains_phi"  # "true" / "false"
META_SOURCE = "stars.source"  # the warehouse relation the rows came from
WHOLE_TABLE = "*"  # the partition name of an unpartitioned table
RECENT_COMMITS = 10


def _root(root: str | None) -> str:
    return (root or settings.lake_uri()).rstrip("/")


def table_uri(layer: str, table: str, root: str | None = None) -> str:
    return f"{_root(root)}/{layer}/{table}"


def _parse_as_of(as_of: datetime | date | str) -> datetime:
    """A date means the end of that day (what the table said on that day); naive times are UTC."""
    if isinstance(as_of, str):
        text = as_of.strip()
        try:
            as_of = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise UnknownVersionError(
                f"--as-of {as_of!r} is neither a date (2026-11-01) nor a timestamp (2026-11-01T14:30:00Z)"
            ) from None
    if not isinstance(as_of, datetime):
        as_of = datetime.combine(as_of, time.max)
    return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)


def open_table(
    layer: str, table: str, *, version: int | None = None, as_of: datetime | date | str | None = None, root: str | None = None
) -> DeltaTable:
    """The table at its newest version, at `version`, or as it was at `as_of` (the newest commit at or before it)."""
    if version is not None and as_of is not None:
        raise UnknownVersionError("give a version or a timestamp, not both")
    uri = table_uri(layer, table, root)
    try:
        delta = DeltaTable(uri)
    except TableNotFoundError:
        raise UnknownTableError(f"no lake table {layer}.{table} at {uri}; `stars-lake tables` lists them") from None
    if version is not None:
        if not 0 <= version <= delta.version():
            raise UnknownVersionError(f"{layer}.{table} has versions 0..{delta.version()}, not {version}")
        delta.load_as_version(version)
    elif as_of is not None:
        moment = _parse_as_of(as_of)
        first = min(entry["timestamp"] for entry in delta.history())
        if moment.timestamp() * 1000 < first:
            created = datetime.fromtimestamp(first / 1000, tz=UTC).isoformat(timespec="seconds")
            raise UnknownVersionError(f"{layer}.{table} did not exist yet at {moment.isoformat()} (created {created})")
        delta.load_as_version(moment)
    return delta


def arrow_dataset(delta: DeltaTable) -> pads.Dataset:
    """The table's files as an Arrow dataset read through Arrow's own filesystem.

    delta-rs' default hands Arrow's reader threads a Python file handler, and a process that read repeatedly
    that way aborted at exit about half the time on this machine ("terminate called without an active
    exception", delta-io/delta-rs#2184); read through Arrow's native filesystem, none did.
    """
    filesystem, path = pafs.FileSystem.from_uri(delta.table_uri)
    return delta.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(path, filesystem))


def read_table(
    layer: str, table: str, *, version: int | None = None, as_of: datetime | date | str | None = None, root: str | None = None
) -> pa.Table:
    return dataset(layer, table, version=version, as_of=as_of, root=root).to_table()


def dataset(
    layer: str, table: str, *, version: int | None = None, as_of: datetime | date | str | None = None, root: str | None = None
) -> pads.Dataset:
    """A lazily scanned Arrow dataset (DuckDB pushes filters and projections into it)."""
    return arrow_dataset(open_table(layer, table, version=version, as_of=as_of, root=root))


def list_tables(root: str | None = None) -> list[tuple[str, str]]:
    """Every (layer, table) under the root holding a Delta log, sorted."""
    filesystem, path = pafs.FileSystem.from_uri(_root(root)) if "://" in _root(root) else (pafs.LocalFileSystem(), _root(root))
    found = []
    for layer in filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
        if layer.type != pafs.FileType.Directory:
            continue
        for table in filesystem.get_file_info(pafs.FileSelector(layer.path, allow_not_found=True)):
            if (
                table.type == pafs.FileType.Directory
                and filesystem.get_file_info(f"{table.path}/_delta_log").type == pafs.FileType.Directory
            ):
                found.append((layer.base_name, table.base_name))
    return sorted(found)


def history(layer: str, table: str, root: str | None = None) -> list[dict]:
    """One entry per commit, newest first: version, time (UTC), operation, partitions replaced, rows written."""
    entries = []
    for commit in open_table(layer, table, root=root).history():
        parameters = commit.get("operationParameters") or {}
        metrics = commit.get("operationMetrics") or {}
        partitions = json.loads(commit[META_PARTITIONS]) if META_PARTITIONS in commit else None
        entries.append(
            {
                "version": commit["version"],
                "timestamp": datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC),
                "operation": commit.get("operation"),
                "mode": parameters.get("mode"),
                "partitions": partitions,
                "rows": metrics.get("num_added_rows"),
                "contains_phi": commit.get(META_CONTAINS_PHI),
                "source": commit.get(META_SOURCE),
            }
        )
    return entries


def latest_commit_value(delta: DeltaTable, key: str) -> str | None:
    """The newest commit's value for a pipeline metadata key (maintenance commits such as VACUUM carry none).
    The last few commits nearly always have it; the whole log is read only when they do not."""
    for limit in (RECENT_COMMITS, None):
        for commit in delta.history(limit):
            if key in commit:
                return commit[key]
    return None


@dataclass(frozen=True)
class TableInfo:
    layer: str
    table: str
    uri: str
    version: int
    updated_at: datetime
    contains_phi: bool
    partition_columns: list[str]
    rows: int


def describe_table(layer: str, table: str, root: str | None = None) -> TableInfo:
    delta = open_table(layer, table, root=root)
    actions = delta.get_add_actions(flatten=True)
    rows = pc.sum(pa.table(actions).column("num_records")).as_py() if len(actions) else 0
    newest = delta.history(1)[0]
    return TableInfo(
        layer=layer,
        table=table,
        uri=table_uri(layer, table, root),
        version=delta.version(),
        updated_at=datetime.fromtimestamp(newest["timestamp"] / 1000, tz=UTC),
        contains_phi=latest_commit_value(delta, META_CONTAINS_PHI) == "true",
        partition_columns=list(delta.metadata().partition_columns),
        rows=int(rows or 0),
    )


def vacuum(layer: str, table: str, *, older_than_days: float, dry_run: bool = False, root: str | None = None) -> list[str]:
    """Delete data files no longer referenced by any version newer than `older_than_days`: time travel to
    versions older than that stops working. Never called by the pipeline; `stars-lake vacuum` runs it."""
    delta = open_table(layer, table, root=root)
    removed = delta.vacuum(retention_hours=int(older_than_days * 24), dry_run=dry_run, enforce_retention_duration=False)
    log.warning(
        "vacuum %s.%s older than %s days%s: %d files %s",
        layer,
        table,
        older_than_days,
        " (dry run)" if dry_run else "",
        len(removed),
        "would be deleted" if dry_run else "deleted",
    )
    return list(removed)
