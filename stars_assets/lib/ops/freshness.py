"""Delivery freshness: what a provider's landing folder says about its latest delivery.

Dagster judges freshness (a last-update freshness check per landing folder, against the
provider's delivery SLA); this module only tells when the newest file landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stars_assets.lib.ops.landing import landed_files
from stars_assets.lib.providers import ProviderConfig


@dataclass(frozen=True)
class LatestDelivery:
    newest_file: str | None
    landed_at: float | None  # modification time of the newest file, seconds since the epoch
    files_landed: int

    def metadata(self) -> dict:
        landed = (
            {}
            if self.landed_at is None
            else {"last_delivery_at": datetime.fromtimestamp(self.landed_at, tz=UTC).isoformat(timespec="seconds")}
        )
        return {"newest_file": self.newest_file or "", "files_landed": self.files_landed, **landed}


def latest_delivery(provider: ProviderConfig, provider_dir: Path) -> LatestDelivery:
    """The newest file the provider's YAML recognises in its folder (by modification time), if any."""
    files = landed_files(provider, provider_dir)
    if not files:
        return LatestDelivery(None, None, 0)
    newest = max(files, key=lambda f: f.modified_ns)
    return LatestDelivery(newest.name, newest.modified_at, len(files))
