"""Bronze's own tables, defined once: the lineage columns every bronze table ends with, the file manifest and the
quarantine. A bronze table's leading columns come from its provider's YAML (text, as delivered)."""

from __future__ import annotations

from stars_assets.lib.tables import Column, TableSpec, unique_text

BRONZE_LINEAGE = (
    Column("_extra", "VARCHAR", "JSON of the columns the provider sent that its YAML does not declare (schema drift)"),
    Column("_source_file", "VARCHAR", "landing file, relative to the landing root", nullable=False),
    Column("_source_row", "BIGINT", "line, message, entry or row number in the file", nullable=False),
    Column("_partition_date", "DATE", "delivery date from the file name", nullable=False),
    Column("_ingested_at", "TIMESTAMP", "when the row was loaded", nullable=False),
    unique_text("_record_hash", "md5 of the declared columns", nullable=False),
)
# A bronze row as delivered is its provider's columns and _extra; the other lineage columns are bronze's own record of it.
BRONZE_OWN_COLUMNS = tuple(c.name for c in BRONZE_LINEAGE if c.name != "_extra")


def delivered_json(row: str, *also_excluded: str) -> str:
    """SQL for the raw text a quarantine row keeps of bronze row `row`: the JSON of its columns as delivered."""
    return f"to_json(struct_pack(*COLUMNS({row}.* EXCLUDE ({', '.join((*BRONZE_OWN_COLUMNS, *also_excluded))}))))"


FILE_MANIFEST = TableSpec(
    "audit.file_manifest",
    "Every file seen in a landing folder and what became of it (loaded, quarantined, skipped as a duplicate, not read).",
    (
        Column("provider", "VARCHAR", nullable=False),
        Column("dataset", "VARCHAR"),
        Column("partition_date", "DATE", "delivery date from the file name"),
        Column("file_path", "VARCHAR", "relative to the landing root", nullable=False),
        Column("size_bytes", "BIGINT"),
        Column("modified_at", "TIMESTAMP"),
        Column("content_hash", "VARCHAR", "sha256 of the file's bytes"),
        Column("status", "VARCHAR", nullable=False),
        Column("reason", "VARCHAR", "why the file was quarantined or not read"),
        Column("detail", "VARCHAR"),
        Column("rows_loaded", "BIGINT"),
        Column("rows_rejected", "BIGINT"),
        Column("extra_columns", "VARCHAR[]", "undeclared columns the file carried"),
        Column("run_id", "VARCHAR"),
        Column("loaded_at", "TIMESTAMP"),
        Column("sample_hash", "VARCHAR", "sha256 of evenly spaced blocks, to notice a rewrite that keeps size and time"),
        Column("line_count", "BIGINT", "physical lines (line formats)"),
        Column("lines_skipped", "BIGINT", "header and blank lines, and line breaks inside quoted values"),
    ),
    partition_column="partition_date",
)

QUARANTINE = TableSpec(
    "audit.quarantine",
    "Rows (bronze and silver) and files set aside with a reason instead of loaded; nothing is dropped without a row here.",
    (
        Column("layer", "VARCHAR", "bronze or silver", nullable=False),
        Column("provider", "VARCHAR", nullable=False),
        Column("dataset", "VARCHAR"),
        Column("partition_date", "DATE"),
        Column("source_file", "VARCHAR"),
        Column("source_row", "BIGINT"),
        Column("reason", "VARCHAR", nullable=False),
        Column("detail", "VARCHAR"),
        unique_text("raw_text", "the row as delivered; previews mask what is shaped like an identifier"),
        Column("run_id", "VARCHAR"),
        Column("recorded_at", "TIMESTAMP"),
    ),
    partition_column="partition_date",
)
