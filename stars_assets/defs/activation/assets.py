"""Activation: member outreach documents for marketing and care-management systems, kept in the document store."""

import time
from datetime import date

import dagster as dg
from dagster_duckdb import DuckDBResource

from stars_assets.defs.automation import FOLLOW_UPSTREAM_DAYS
from stars_assets.defs.partitions import daily_partitions, range_run
from stars_assets.defs.resources import DocumentStoreResource
from stars_assets.lib.documents.build import build_documents
from stars_assets.lib.warehouse import configure_connection

MEMBER_DOCUMENTS = dg.AssetKey(["activation", "member_documents"])
REFERENCE_VERSION = "reference_version"
UPSTREAM = [dg.AssetKey(["silver", name]) for name in ("members", "care_gaps", "outreach_events", "appointments")] + [
    dg.AssetKey(["gold", "care_gap_closure"]),
    dg.AssetKey(["model", "measure_levers"]),
]


class MemberDocumentsConfig(dg.Config):
    rebuild_all: bool = False  # rebuild every member's document, not only those changed on the run's dates


@dg.asset(
    key=MEMBER_DOCUMENTS,
    group_name="activation",
    description=(
        "One JSON document per member for outreach systems: contract, region, cohort flags, open and closed care gaps "
        "(with gold's attributed channel), the last touch per channel with its outcome, opt-outs per channel, upcoming "
        "and past appointments, and the open-gap measures ranked by the contract's measure levers. A run rebuilds the "
        "members whose silver rows arrived on its delivery dates and writes those whose content changed to the "
        "document store, each under a new change-feed sequence number."
    ),
    deps=UPSTREAM,
    kinds={"duckdb", "sql"},
    owners=["team:stars-activation"],
    **range_run(daily_partitions),
    automation_condition=FOLLOW_UPSTREAM_DAYS,
)
def member_documents(
    context: dg.AssetExecutionContext,
    config: MemberDocumentsConfig,
    duckdb: DuckDBResource,
    document_store: DocumentStoreResource,
) -> dg.MaterializeResult:
    days = [date.fromisoformat(k) for k in context.partition_keys]
    started = time.perf_counter()
    store = document_store.open()
    try:
        with duckdb.get_connection() as conn:
            configure_connection(conn)
            build = build_documents(conn, None if config.rebuild_all else days, store, REFERENCE_VERSION)
        assembled = time.perf_counter()
        written = store.write_documents(build.documents, {REFERENCE_VERSION: build.reference_version})
        write_seconds = time.perf_counter() - assembled
        summary = store.summary()
    finally:
        store.close()
    seconds = time.perf_counter() - started
    context.log.info(
        f"{build.mode} build over {len(days)} delivery dates: {build.documents.num_rows} documents rebuilt, "
        f"{written} changed and written, store now holds {summary['documents']}"
    )
    return dg.MaterializeResult(
        metadata={
            "mode": build.mode,
            "documents_rebuilt": build.documents.num_rows,
            "documents_written": written,
            "documents_unchanged": build.documents.num_rows - written,
            "documents_in_store": summary["documents"],
            "last_change_seq": summary["last_seq"],
            "store_backend": summary["backend"],
            "reference_weeks": build.reference_version,
            "build_seconds": round(seconds, 3),
            "assemble_seconds": round(assembled - started, 3),  # DuckDB: the documents
            "write_seconds": round(write_seconds, 3),  # the document store's comparison with the stored hashes, upsert and commit
        }
    )


refresh_member_documents_job = dg.define_asset_job(
    "refresh_member_documents",
    selection=dg.AssetSelection.groups("activation"),
    description="Rebuild the outreach documents of the members whose data arrived on the selected delivery dates and publish the changed ones to the document store.",
)


# A module with a @dg.definitions function contributes only what that function returns.
@dg.definitions
def activation() -> dg.Definitions:
    return dg.Definitions(
        assets=[member_documents],
        jobs=[refresh_member_documents_job],
    )
