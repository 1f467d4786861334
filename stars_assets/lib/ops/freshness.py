"""Delivery freshness: did the provider's latest file land within its delivery SLA?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from stars_assets.lib.ops.landing import landed_files
from stars_assets.lib.providers import ProviderConfig


@dataclass(frozen=True)
class DeliveryFreshness:
    passed: bool
    description: str
    metadata: dict


def delivery_freshness(provider: ProviderConfig, provider_dir: Path, *, now: float) -> DeliveryFreshness:
    """Fails when nothing landed in the last `delivery_sla_hours` (or nothing ever landed)."""
    files = landed_files(provider, provider_dir)
    sla = provider.delivery_sla_hours
    if not files:
        return DeliveryFreshness(False, f"no {provider.name} file has landed yet (SLA {sla} h)",
                                 {"sla_hours": sla, "files_landed": 0})
    latest = max(files, key=lambda f: f.modified_ns)
    hours_since = (now - latest.modified_at) / 3600
    passed = hours_since <= sla
    return DeliveryFreshness(
        passed,
        f"last {provider.name} file landed {hours_since:.1f} h ago; SLA {sla} h"
        + ("" if passed else f": {hours_since - sla:.1f} h late"),
        {
            "sla_hours": sla,
            "hours_since_last_delivery": round(hours_since, 2),
            "hours_late": round(max(0.0, hours_since - sla), 2),
            "last_file": latest.name,
            "last_delivery_at": datetime.fromtimestamp(latest.modified_at, tz=timezone.utc).isoformat(timespec="seconds"),
            "files_landed": len(files),
        },
    )
