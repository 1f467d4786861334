"""Bronze quality rules as plain functions; the Dagster checks only report what these return."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from stars_assets.lib.bronze.landing import LandedFile, inventory
from stars_assets.lib.bronze.load import PartitionLoad
from stars_assets.lib.providers import ProviderConfig

# Above this share of rejected rows a partition is worth a look even when nothing broke.
QUARANTINE_WARN_SHARE = 0.01


@dataclass(frozen=True)
class RuleOutcome:
    passed: bool
    metadata: dict = field(default_factory=dict)
    # A failed rule whose evidence is too thin to stop the run (a rate over a handful of rows) warns.
    warn_only: bool = False


def reconciliation_result(
    con: duckdb.DuckDBPyConnection,
    provider: ProviderConfig,
    provider_dir: Path,
    days: list[date],
    now: float | None = None,
    entries: list[LandedFile] | None = None,
) -> RuleOutcome:
    """Every entry of the landing folder (of these days, or without a date) is in the manifest;
    bronze rows per file = the manifest's rows_loaded; and every line of a line-format file is a
    loaded row, a rejected row or a skipped line."""
    if entries is None:  # else the folder's inventory the caller took once for a range of days
        entries = inventory(provider, provider_dir, time.time() if now is None else now)
    on_disk = {e.relative for e in entries if e.partition_date is None or e.partition_date in days}
    manifest = con.execute(
        "SELECT file_path, status, dataset, rows_loaded, rows_rejected, line_count, lines_skipped FROM audit.file_manifest "
        "WHERE provider = $provider AND (partition_date IN (SELECT unnest($days)) OR partition_date IS NULL)",
        {"provider": provider.name, "days": days},
    ).fetchall()
    in_manifest = {row[0] for row in manifest}
    # One grouped count per bronze table (not one scan per file): rows by source file in the days.
    in_bronze: dict[str, int] = {}
    for dataset in provider.datasets:
        in_bronze.update(
            con.execute(
                f"SELECT _source_file, count(*) FROM bronze.{dataset.name} "
                "WHERE _partition_date IN (SELECT unnest($days)) GROUP BY 1",
                {"days": days},
            ).fetchall()
        )
    loaded = {row[0]: row[3] for row in manifest if row[1] == "loaded"}
    row_mismatches = [
        f"{file_path}: manifest {loaded.get(file_path, 0)}, bronze {in_bronze.get(file_path, 0)}"
        for file_path in sorted(set(loaded) | set(in_bronze))
        if loaded.get(file_path, 0) != in_bronze.get(file_path, 0)
    ]
    line_mismatches = [
        f"{file_path}: {lines} lines, {rows} loaded + {rejected} rejected + {skipped} skipped"
        for file_path, status, _, rows, rejected, lines, skipped in manifest
        if status == "loaded" and lines is not None and skipped is not None and lines != rows + rejected + skipped
    ]
    missing = sorted(on_disk - in_manifest)
    unexpected = sorted(in_manifest - on_disk)
    statuses: dict[str, int] = {}
    for row in manifest:
        statuses[row[1]] = statuses.get(row[1], 0) + 1
    return RuleOutcome(
        passed=not (missing or unexpected or row_mismatches or line_mismatches),
        metadata={
            "files_on_disk": len(on_disk),
            "files_in_manifest": len(in_manifest),
            "files_by_status": statuses,
            "files_missing_from_manifest": missing[:20],
            "manifest_files_not_on_disk": unexpected[:20],
            "row_count_mismatches": row_mismatches[:20],
            "line_count_mismatches": line_mismatches[:20],
        },
    )


def quarantine_rate_result(loads: list[PartitionLoad]) -> RuleOutcome:
    """Fails (as a warning) when any file was quarantined or too many rows were rejected."""
    loaded = sum(load.rows_loaded for load in loads)
    rejected = sum(load.rows_rejected for load in loads)
    share = rejected / (loaded + rejected) if loaded + rejected else 0.0
    reasons: dict[str, int] = {}
    for load in loads:
        for reason, count in load.reason_counts().items():
            reasons[reason] = reasons.get(reason, 0) + count
    files_quarantined = sum(load.files_quarantined for load in loads)
    files_not_read = sum(load.files_not_read for load in loads)
    return RuleOutcome(
        passed=files_quarantined == 0 and files_not_read == 0 and share <= QUARANTINE_WARN_SHARE,
        metadata={
            "rows_loaded": loaded,
            "rows_quarantined": rejected,
            "quarantined_share": round(share, 6),
            "warn_above_share": QUARANTINE_WARN_SHARE,
            "files_quarantined": files_quarantined,
            "files_not_read": files_not_read,
            "file_reasons": reasons,
        },
    )
