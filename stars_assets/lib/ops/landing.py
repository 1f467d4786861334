"""What sits in a provider's landing folder: the files its YAML claims, with their delivery dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from stars_assets.lib.providers import ProviderConfig


@dataclass(frozen=True)
class LandedFile:
    path: Path
    size: int
    modified_ns: int
    partition_date: date

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def modified_at(self) -> float:
        return self.modified_ns / 1e9


def landed_files(provider: ProviderConfig, provider_dir: Path) -> list[LandedFile]:
    """Files in the folder that one of the provider's datasets recognises, in name order.

    Files no dataset recognises (vendor notes, temp uploads) are not the pipeline's to load.
    """
    if not provider_dir.is_dir():
        return []
    found = []
    for path in sorted(p for p in provider_dir.iterdir() if p.is_file()):
        day = next((d for d in (dataset.matches(path.name) for dataset in provider.datasets) if d is not None), None)
        if day is not None:
            stat = path.stat()
            found.append(LandedFile(path, stat.st_size, stat.st_mtime_ns, day))
    return found
