"""Every table the lake publishes, defined once: where it comes from, how it is partitioned, whether it holds PHI.

The assets, their checks and the jobs that run them are derived from this list (assets.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg

from stars_assets.defs.gold.assets import week_end
from stars_assets.defs.partitions import daily_partitions, weekly_partitions
from stars_assets.lib.gold.tables import GOLD_TABLES
from stars_assets.lib.providers import load_registry
from stars_assets.lib.silver.tables import SILVER_TABLES

WAREHOUSE_SPECS = {spec.qualified_name: spec for spec in (*SILVER_TABLES, *GOLD_TABLES.values())}

QUARANTINE_SUMMARY_SQL = """
SELECT layer, provider, partition_date AS delivery_date, reason, count(*) AS "rows"
FROM audit.quarantine
GROUP BY ALL
"""


@dataclass(frozen=True)
class LakeTable:
    layer: str
    table: str
    deps: tuple[dg.AssetKey, ...]
    contains_phi: bool
    description: str
    # Daily or weekly: the asset publishes exactly its partitions. Without a partition column the
    # table is replaced whole (in one commit, only when it changed) whichever partitions ran.
    partitions_def: dg.PartitionsDefinition | None = None
    partition_column: str | None = None
    # A SELECT over the warehouse; None: the warehouse table of the same name.
    source_sql: str | None = None
    # Tables built outside the warehouse (from the Dagster instance or the landing zone) name their builder in assets.py.
    builder: str | None = None

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["publish", self.layer, self.table])

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}"

    @property
    def source(self) -> str:
        return self.source_sql or f'SELECT * FROM "{self.layer}"."{self.table}"'

    @property
    def unique_columns(self) -> list[str]:
        """The columns of (nearly) all different values, as the warehouse table's spec declares them."""
        spec = None if self.source_sql else WAREHOUSE_SPECS.get(self.name)
        return spec.unique_columns if spec else []

    def partition_value(self, partition_key: str) -> date:
        """The value of the table's partition column that a Dagster partition key stands for."""
        return week_end(partition_key) if self.partitions_def is weekly_partitions else date.fromisoformat(partition_key)


def _key(*path: str) -> dg.AssetKey:
    return dg.AssetKey(list(path))


def _silver(
    table: str,
    description: str,
    *,
    daily: bool,
    partition_column: str | None = "partition_date",
    deps: tuple[dg.AssetKey, ...] | None = None,
) -> LakeTable:
    return LakeTable(
        "silver",
        table,
        deps or (_key("silver", table),),
        contains_phi=True,
        description=description,
        partitions_def=daily_partitions if daily else None,
        partition_column=partition_column if daily else None,
    )


def _weekly(layer: str, table: str, contains_phi: bool, description: str) -> LakeTable:
    return LakeTable(layer, table, (_key(layer, table),), contains_phi, description, weekly_partitions, "as_of_week_end")


def _whole(layer: str, table: str, description: str) -> LakeTable:
    return LakeTable(layer, table, (_key(layer, table),), False, description)


LAKE_TABLES: list[LakeTable] = [
    # Silver holds member identifiers: the API serves them to keys with the right scope.
    _silver("outreach_events", "Canonical outreach events, one partition per delivery date.", daily=True),
    _silver(
        "appointment_events", "Appointment history: every appointment message or resource version, per delivery date.", daily=True
    ),
    _silver(
        "appointments",
        "Latest state of each appointment (not partitioned: replaced whole when it changed).",
        daily=True,
        partition_column=None,
    ),
    _silver("quarantine", "Every rejected file or row with its reason and raw text, per delivery date.", daily=True),
    _silver("care_gaps", "Care gaps per member, measure and measurement year.", daily=False),
    _silver(
        "members",
        "Members of the latest enrollment snapshot (member id, MBI, birth date): for the API's member lookups.",
        daily=False,
    ),
    # Gold: care_gap_closure is member-level (PHI); the other marts are aggregates for dashboards.
    _weekly(
        "gold",
        "care_gap_closure",
        True,
        "Member care gaps as of each week end with touches, appointments and the attributed channel.",
    ),
    _weekly("gold", "campaign_effectiveness", False, "Campaign effectiveness cells as of each week end (no member identifiers)."),
    _weekly(
        "gold",
        "contract_measure_rates",
        False,
        "Per contract and CMS measure: numerator, denominator, rate and projected stars per week.",
    ),
    _weekly("gold", "contract_projected_summary", False, "Per contract: the projected CMS summary rating per week."),
    # CMS's published tables and their reproduction: public, contract-level.
    *[
        _whole("cms", table, f"CMS Star Ratings data table {table}, every star year the project carries.")
        for table in ("measure_scores", "measure_stars", "summary_ratings", "cut_points", "cai")
    ],
    _whole("cms", "overall_ratings_recomputed", "Overall Star Ratings recomputed from Measure Stars with every component."),
    # Model outputs: contract-level.
    _weekly(
        "model",
        "contract_predictions",
        False,
        "Per contract, week and model: rating probabilities, expected stars, P(4+), top levers.",
    ),
    _weekly(
        "model", "measure_levers", False, "Per contract, week and measure: distance to the next cut point and the summary gain."
    ),
    _whole("model", "star_rating_model", "The ordinal Star Rating model's parameter table and fit statistics (model summary)."),
    _whole("model", "cms_training_set", "The CMS training set the model is fitted on, one row per rated contract."),
    # Quality summary: counts and outcomes, no member identifiers.
    LakeTable(
        "quality",
        "quarantine_summary",
        (_key("silver", "quarantine"),),
        False,
        "Quarantined rows by layer, provider, delivery date and reason.",
        source_sql=QUARANTINE_SUMMARY_SQL,
    ),
    LakeTable(
        "quality",
        "delivery_freshness",
        tuple(_key("bronze", p.name) for p in load_registry()),
        False,
        "Each provider's newest landed file against its delivery SLA, when the table was published.",
        builder="delivery_freshness",
    ),
]

# Published last in every job that publishes: the outcome of every asset check the instance recorded.
CHECK_OUTCOMES = LakeTable(
    "quality",
    "check_outcomes",
    tuple(t.key for t in LAKE_TABLES),
    False,
    "The latest outcome of every asset check (per check; partitioned checks: their latest partition).",
    builder="check_outcomes",
)
LAKE_TABLES.append(CHECK_OUTCOMES)
