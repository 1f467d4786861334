"""Silver: the canonical outreach model and the warehouse dimensions, with their quality checks."""

import json
from datetime import UTC, date, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from stars_assets.defs.bronze.assets import bronze_key
from stars_assets.defs.partitions import (
    WAREHOUSE_POOL,
    daily_partitions,
    partition_check_evaluations,
    range_run,
)
from stars_assets.defs.tables import table_metadata
from stars_assets.lib.bronze.load import ensure_tables
from stars_assets.lib.masking import markdown_preview
from stars_assets.lib.providers import load_registry
from stars_assets.lib.silver import inputs, quality, tables
from stars_assets.lib.silver.dimensions import build_care_gaps, build_members, build_rx_fills
from stars_assets.lib.silver.event_kinds import APPOINTMENT, OUTREACH, StateChanges
from stars_assets.lib.silver.events import DEDUP_WINDOW_DAYS, build_partition
from stars_assets.lib.tables import TableSpec
from stars_assets.lib.warehouse import configure_connection, in_transaction, table_columns

PROVIDERS = load_registry()
OUTREACH_PROVIDERS = [p for p in PROVIDERS if p.kind == "outreach"]
EMR_PROVIDERS = [p for p in PROVIDERS if p.kind == "appointments"]
WAREHOUSE_PROVIDER = next(p for p in PROVIDERS if p.kind == "warehouse")
OWNERS = ["team:stars-data-engineering"]

OUTREACH_KEY = dg.AssetKey(["silver", "outreach_events"])


def _event_checks(table: str, timeliness: str, timeliness_text: str) -> dict[str, str]:
    """The checks every silver event table has; only what timeliness means differs by kind."""
    return {
        "check_validity_member_id_coverage": f"Share of delivered rows whose member id is well formed and resolves through the crosswalk is at least {quality.MIN_MEMBER_ID_COVERAGE:.0%}.",
        "check_uniqueness_event_id": f"No event_id appears twice in silver.{table} within {DEDUP_WINDOW_DAYS} days (the deduplication window).",
        timeliness: timeliness_text,
        "check_referential_member_contract": f"Every row of silver.{table} has its member in silver.members and a known contract.",
        "check_reconciliation_rows": "Per provider and day: rows delivered = rows in silver + rows quarantined + duplicates removed.",
    }


OUTREACH_CHECKS = _event_checks(
    "outreach_events",
    "check_timeliness_event_ts",
    "No event in silver is stamped after its delivery (future events are quarantined).",
)


def _partition_counts(mode: str | None, counts) -> dict:
    """One delivery date's counts, for that partition's own materialization (a range run records one per day)."""
    totals = {k: sum(getattr(c, k) for c in counts) for k in ("delivered", "loaded", "quarantined", "duplicates")}
    return {
        "dagster/row_count": dg.MetadataValue.int(totals["loaded"]),
        **({"mode": mode} if mode else {}),
        "rows_loaded": totals["loaded"],
        "rows_delivered": totals["delivered"],
        "rows_quarantined": totals["quarantined"],
        "duplicates_removed": totals["duplicates"],
        "per_provider": dg.MetadataValue.md(
            markdown_preview(
                ["provider", "delivered", "loaded", "quarantined", "duplicates"],
                [(c.provider, c.delivered, c.loaded, c.quarantined, c.duplicates) for c in counts],
            )
        ),
    }


def _table_metadata(conn, table: str, columns: list[str]) -> dict:
    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} LIMIT 5").fetchall()
    return {"dagster/row_count": dg.MetadataValue.int(count), "preview": dg.MetadataValue.md(markdown_preview(columns, rows))}


def _bronze_rows(conn, dataset: str) -> str:
    return f"bronze_rows={conn.execute(f'SELECT count(*) FROM bronze.{dataset}').fetchone()[0]}"


def _dimension_asset(spec: TableSpec, description: str, build, preview_columns: list[str]):
    """A warehouse dimension, rebuilt from the EDW extract of the same name (bronze.edw_<table>)."""
    name = spec.name
    dataset = f"edw_{name}"

    @dg.asset(
        key=["silver", name],
        group_name="silver",
        description=description,
        deps=[bronze_key(WAREHOUSE_PROVIDER.name)],
        kinds={"duckdb", "sql"},
        owners=OWNERS,
        pool=WAREHOUSE_POOL,
        metadata=table_metadata(spec),
    )
    def dimension(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.get_connection() as conn:
            configure_connection(conn)
            ensure_tables(conn, WAREHOUSE_PROVIDER)
            # Rebuilt only when the loaded extract files (or the bronze row count) changed since the last build.
            current = inputs.current_inputs(conn, [WAREHOUSE_PROVIDER.name], None, _bronze_rows(conn, dataset), [dataset])
            rebuilt = table_columns(conn, f"silver.{name}") is None or inputs.plan(conn, name, None, current).mode != "unchanged"
            if rebuilt:
                build(conn, context.run.run_id)
                with in_transaction(conn):
                    inputs.record(conn, name, None, current, context.run.run_id)
            else:
                context.log.info(f"silver.{name}: the {dataset} extracts are unchanged since the last build; kept as is")
            metadata = _table_metadata(conn, f"silver.{name}", preview_columns)
            return dg.MaterializeResult(metadata={**metadata, "rebuilt": rebuilt})

    return dimension


members = _dimension_asset(
    tables.MEMBERS,
    "Members from the latest enrollment snapshot, with the identifier crosswalk silver.member_identifiers (member id, MBI, vendor reference).",
    build_members,
    ["member_id", "mbi", "contract_id", "region", "dual_status", "lis_status", "snapshot_date"],
)
care_gaps = _dimension_asset(
    tables.CARE_GAPS,
    "Care gaps (member x measure x measurement year) from the latest care-gap list, with open and close dates.",
    build_care_gaps,
    ["gap_id", "member_id", "measure_code", "cms_measure_id", "gap_status", "open_date", "close_date"],
)
rx_fills = _dimension_asset(
    tables.RX_FILLS,
    "Part D fills for the adherence classes (diabetes, RAS antagonists, statins), one row per fill.",
    build_rx_fills,
    ["fill_id", "member_id", "drug_class", "fill_date", "days_supply"],
)


@dg.asset(
    key=OUTREACH_KEY,
    group_name="silver",
    description=(
        "One row per real-world outreach event from every outreach vendor, in one canonical schema: "
        "deterministic event_id, resolved member and contract, canonical channel and event type, UTC time, "
        "and lineage to the source file and row. Duplicates are removed across days; rejected rows go to quarantine."
    ),
    deps=[bronze_key(p.name) for p in OUTREACH_PROVIDERS] + [members.key],
    kinds={"duckdb", "sql"},
    owners=OWNERS,
    metadata=table_metadata(tables.OUTREACH_EVENTS),
    **range_run(daily_partitions, OUTREACH_KEY, OUTREACH_CHECKS),
)
def outreach_events(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    days = [date.fromisoformat(k) for k in context.partition_keys]
    outcomes: dict[str, dict[str, tuple]] = {name: {} for name in OUTREACH_CHECKS}
    # Rows this run writes are stamped later than this; the row checks read only those.
    run_started = datetime.now(UTC).replace(tzinfo=None)
    sources = [(p.name, p.dataset(p.outreach.dataset).name) for p in OUTREACH_PROVIDERS]
    with duckdb.get_connection() as conn:
        configure_connection(conn)
        ensure_tables(conn, *OUTREACH_PROVIDERS, WAREHOUSE_PROVIDER)
        for number, day in enumerate(days, start=1):
            build = build_partition(conn, OUTREACH, list(OUTREACH_PROVIDERS), day, context.run.run_id)
            context.log.info(
                f"[{number}/{len(days)}] {day} ({build.mode}, {build.files_read} files read): "
                + ", ".join(
                    f"{c.provider} {c.loaded} loaded / {c.quarantined} quarantined / {c.duplicates} duplicates"
                    for c in build.counts
                )
            )
            written = [day] if build.mode != "unchanged" else []
            day_outcomes = {
                "check_validity_member_id_coverage": quality.member_id_coverage(conn, "outreach_events", [day]),
                "check_uniqueness_event_id": quality.unique_event_ids(
                    conn, "outreach_events", written, DEDUP_WINDOW_DAYS, run_started
                ),
                "check_timeliness_event_ts": quality.event_time_integrity(conn, [day], run_started),
                "check_referential_member_contract": quality.referential_integrity(conn, "outreach_events", [day], run_started),
                "check_reconciliation_rows": quality.reconciliation(conn, "outreach_events", sources, [day]),
            }
            for name, outcome in day_outcomes.items():
                outcomes[name][day.isoformat()] = (outcome.passed, outcome.metadata, _severity(outcome))
            by_channel = dict(
                conn.execute(
                    "SELECT channel, count(*) FROM silver.outreach_events WHERE partition_date = $day GROUP BY 1 ORDER BY 1",
                    {"day": day},
                ).fetchall()
            )
            context.add_asset_metadata(
                {
                    **_partition_counts(build.mode, build.counts),
                    "valid_member_id_coverage": day_outcomes["check_validity_member_id_coverage"].metadata["coverage"],
                    "events_by_channel": dg.MetadataValue.json(by_channel),
                },
                partition_key=day.isoformat(),
            )
        columns = [
            "event_id",
            "provider",
            "member_id",
            "contract_id",
            "channel",
            "event_type",
            "event_ts",
            "source_file",
            "source_row",
        ]
        preview = conn.execute(
            f"SELECT {', '.join(columns)} FROM silver.outreach_events WHERE partition_date IN (SELECT unnest($days)) "
            "AND source_row <= 10 ORDER BY event_ts LIMIT 5",
            {"days": days},
        ).fetchall()  # first rows of each file: zone maps skip the rest
    yield dg.MaterializeResult(metadata={"preview": dg.MetadataValue.md(markdown_preview(columns, preview))})
    for name, by_partition in outcomes.items():
        yield from partition_check_evaluations(context, dg.AssetCheckKey(OUTREACH_KEY, name), by_partition)


def _severity(outcome) -> dg.AssetCheckSeverity:
    """A failed rule with thin evidence warns, and so does not block what follows."""
    return dg.AssetCheckSeverity.WARN if outcome.warn_only else dg.AssetCheckSeverity.ERROR


APPOINTMENT_EVENTS_KEY = dg.AssetKey(["silver", "appointment_events"])
APPOINTMENTS_KEY = dg.AssetKey(["silver", "appointments"])
APPOINTMENT_CHECKS = _event_checks(
    "appointment_events",
    "check_timeliness_appointment_start",
    "No appointment in silver starts before it was booked or is stamped after its delivery.",
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            APPOINTMENT_EVENTS_KEY,
            group_name="silver",
            description="Full history of appointment events from both EMR feeds (HL7 v2 SIU and FHIR R4), one row per message or resource version, with resolved member and UTC times.",
            deps=[bronze_key(p.name) for p in EMR_PROVIDERS] + [members.key],
            kinds={"duckdb", "sql"},
            metadata=table_metadata(tables.APPOINTMENT_EVENTS),
            owners=OWNERS,
        ),
        dg.AssetSpec(
            APPOINTMENTS_KEY,
            group_name="silver",
            description="Latest state of each appointment keyed by a source-qualified id (emr_north:…, emr_south:…). Each run rewrites only the appointments whose state hash changed.",
            deps=[APPOINTMENT_EVENTS_KEY],
            kinds={"duckdb", "sql"},
            metadata=table_metadata(tables.APPOINTMENTS),
            owners=OWNERS,
        ),
    ],
    **range_run(daily_partitions, APPOINTMENT_EVENTS_KEY, APPOINTMENT_CHECKS),
)
def appointments(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    days = [date.fromisoformat(k) for k in context.partition_keys]
    outcomes: dict[str, dict[str, tuple]] = {name: {} for name in APPOINTMENT_CHECKS}
    sources = [(p.name, p.dataset(p.appointments.dataset).name) for p in EMR_PROVIDERS]
    with duckdb.get_connection() as conn:
        configure_connection(conn)
        ensure_tables(conn, *EMR_PROVIDERS, WAREHOUSE_PROVIDER)
        for number, day in enumerate(days, start=1):
            build = build_partition(conn, APPOINTMENT, list(EMR_PROVIDERS), day, context.run.run_id)
            day_counts, changes = build.counts, build.derived or StateChanges(0, 0, 0)
            context.log.info(
                f"[{number}/{len(days)}] {day}: {sum(c.loaded for c in day_counts)} events loaded; "
                f"appointments {changes.inserted} new, {changes.updated} changed, {changes.unchanged} unchanged, "
                f"{changes.removed} removed"
            )
            day_outcomes = {
                "check_validity_member_id_coverage": quality.member_id_coverage(conn, "appointment_events", [day]),
                "check_uniqueness_event_id": quality.unique_event_ids(conn, "appointment_events", [day], DEDUP_WINDOW_DAYS),
                "check_timeliness_appointment_start": quality.appointment_time_integrity(conn, [day]),
                "check_referential_member_contract": quality.referential_integrity(conn, "appointment_events", [day]),
                "check_reconciliation_rows": quality.reconciliation(conn, "appointment_events", sources, [day]),
            }
            for name, outcome in day_outcomes.items():
                outcomes[name][day.isoformat()] = (outcome.passed, outcome.metadata, _severity(outcome))
            partition = day.isoformat()
            context.add_asset_metadata(
                _partition_counts(None, day_counts), asset_key=APPOINTMENT_EVENTS_KEY, partition_key=partition
            )
            context.add_asset_metadata(
                {
                    "appointments_inserted": changes.inserted,
                    "appointments_updated": changes.updated,
                    "appointments_unchanged": changes.unchanged,
                    "appointments_removed": changes.removed,
                },
                asset_key=APPOINTMENTS_KEY,
                partition_key=partition,
            )
        total_appointments, by_status = conn.execute(
            "SELECT count(*), to_json(map_from_entries(list({'key': status, 'value': n}))) FROM "
            "(SELECT status, count(*) AS n FROM silver.appointments GROUP BY 1)"
        ).fetchone()
    yield dg.MaterializeResult(asset_key=APPOINTMENT_EVENTS_KEY)
    yield dg.MaterializeResult(
        asset_key=APPOINTMENTS_KEY,
        metadata={
            "appointments_total": int(total_appointments),
            "by_status": dg.MetadataValue.json(json.loads(by_status or "{}")),
        },
    )
    for name, by_partition in outcomes.items():
        yield from partition_check_evaluations(context, dg.AssetCheckKey(APPOINTMENT_EVENTS_KEY, name), by_partition)


@dg.asset(
    key=["silver", "quarantine"],
    group_name="silver",
    description="Every rejected file or row, from bronze and silver: provider, partition, source file and row, reason code and raw text. A view over audit.quarantine.",
    deps=[bronze_key(p.name) for p in PROVIDERS] + [OUTREACH_KEY, APPOINTMENT_EVENTS_KEY],
    kinds={"duckdb", "sql"},
    owners=OWNERS,
    pool=WAREHOUSE_POOL,
)
def quarantine(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as conn:
        ensure_tables(conn, *PROVIDERS)
        conn.execute("CREATE SCHEMA IF NOT EXISTS silver")
        # Created once: the view follows audit.quarantine's columns, and a re-run with nothing new writes nothing.
        conn.execute("CREATE VIEW IF NOT EXISTS silver.quarantine AS SELECT * FROM audit.quarantine")
        reasons = conn.execute(
            "SELECT layer, provider, reason, count(*) FROM silver.quarantine GROUP BY ALL ORDER BY 4 DESC"
        ).fetchall()
        total = sum(r[3] for r in reasons)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(total),
            "by_reason": dg.MetadataValue.md(markdown_preview(["layer", "provider", "reason", "rows"], reasons)),
        }
    )
