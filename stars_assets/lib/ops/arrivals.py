"""New files in a provider's landing folder since the last look: the logic of the file-arrival sensors.

The cursor remembers, per file name, the size, modification time and content hash last seen.
A file is new when its name is unknown or its size or modification time changed; a
re-delivery of identical bytes under the same name (new modification time, same content) is
remembered with its new time and requests nothing. New files are grouped by delivery date,
one run per partition, keyed by the name, size and modification time of every new file of
that partition: the same delivery never yields two keys, a changed one always a new key.

A sensor without a cursor (turned on for the first time, or reset) starts from what the file
manifest already holds: a file the pipeline has loaded, quarantined or skipped is not new.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath

from stars_assets.lib.bronze.load import content_hash
from stars_assets.lib.ops.landing import LandedFile, landed_files
from stars_assets.lib.providers import ProviderConfig

# A file modified more recently than this may still be uploading: it is looked at next tick.
SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class SeenFile:
    size: int
    modified_ns: int
    content_hash: str


@dataclass(frozen=True)
class PartitionArrival:
    partition_date: date
    files: tuple[LandedFile, ...]
    run_key: str


@dataclass(frozen=True)
class ArrivalScan:
    arrivals: list[PartitionArrival]
    cursor: str
    # Files left for a later tick: still being written, or their partition is not open yet.
    waiting: list[str]


def read_cursor(cursor: str | None) -> dict[str, SeenFile]:
    return {name: SeenFile(*entry) for name, entry in json.loads(cursor or "{}").items()}


def write_cursor(seen: dict[str, SeenFile]) -> str:
    return json.dumps({name: [f.size, f.modified_ns, f.content_hash] for name, f in sorted(seen.items())}, separators=(",", ":"))


def cursor_from_manifest(rows: list[tuple[str, int, int, str]]) -> str:
    """The cursor that treats every file in the manifest as seen: rows of (file path relative to the
    landing root, size, modification time in ns, content hash), the latest record of each path last."""
    return write_cursor(
        {PurePosixPath(path).name: SeenFile(size, modified_ns, digest) for path, size, modified_ns, digest in rows}
    )


def arrival_run_key(provider: str, day: date, files: list[LandedFile]) -> str:
    fingerprints = "\n".join(sorted(f"{f.name}:{f.size}:{f.modified_ns}" for f in files))
    return f"{provider}:{day.isoformat()}:{hashlib.sha256(fingerprints.encode()).hexdigest()[:16]}"


def scan_arrivals(
    provider: ProviderConfig,
    provider_dir: Path,
    cursor: str | None,
    *,
    now: float,
    partition_is_open: Callable[[date], bool],
) -> ArrivalScan:
    """The partitions with new files since `cursor`, and the cursor to keep."""
    if not provider_dir.is_dir():
        # An unmounted or not yet created folder must not make the sensor forget what it saw.
        return ArrivalScan([], write_cursor(read_cursor(cursor)), [])
    seen = read_cursor(cursor)
    kept: dict[str, SeenFile] = {}  # files no longer in the folder (archived) drop out of the cursor
    new_by_day: dict[date, list[LandedFile]] = defaultdict(list)
    waiting: list[str] = []
    for landed in landed_files(provider, provider_dir):
        previous = seen.get(landed.name)
        if now - landed.modified_at < SETTLE_SECONDS or not partition_is_open(landed.partition_date):
            waiting.append(landed.name)
            if previous is not None:
                kept[landed.name] = previous
            continue
        if previous is not None and (previous.size, previous.modified_ns) == (landed.size, landed.modified_ns):
            kept[landed.name] = previous
            continue
        digest = content_hash(landed.path)
        kept[landed.name] = SeenFile(landed.size, landed.modified_ns, digest)
        if previous is not None and previous.content_hash == digest:
            continue  # identical re-delivery
        new_by_day[landed.partition_date].append(landed)
    arrivals = [
        PartitionArrival(day, tuple(files), arrival_run_key(provider.name, day, files))
        for day, files in sorted(new_by_day.items())
    ]
    return ArrivalScan(arrivals, write_cursor(kept), waiting)
