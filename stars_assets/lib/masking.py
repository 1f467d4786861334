"""PHI never shows in clear: anything put in logs, metadata previews, check examples or alerts is masked.

Which columns are PHI comes from the table specs (the `phi` and `identifier` flags of their
columns), so a column flagged once is masked in every preview. Identifiers (member id, MBI,
vendor reference) keep their last two characters, enough to tell rows apart; other PHI (dates
of birth, diagnosis and eligibility flags) is hidden whole. Free text is scrubbed of anything
shaped like an identifier.
"""

from __future__ import annotations

import functools
import re

# Vendor columns that carry a member identifier in bronze, whatever the provider calls them.
BRONZE_IDENTIFIER_COLUMNS = frozenset({"member_ref", "patient_id", "patient_identifier"})
_IDENTIFIER_TOKENS = re.compile(r"\b(?:M\d{9}|VR[0-9A-F]{8}|[1-9][A-Z0-9]{10})\b")
HIDDEN = "***"


@functools.cache
def _flagged() -> tuple[frozenset[str], frozenset[str]]:
    """(identifier columns, other PHI columns) over every table spec."""
    from stars_assets.lib.gold.tables import GOLD_TABLES
    from stars_assets.lib.silver.tables import SILVER_TABLES

    columns = [c for spec in (*SILVER_TABLES, *GOLD_TABLES) for c in spec.columns]
    identifiers = frozenset(c.name for c in columns if c.identifier) | BRONZE_IDENTIFIER_COLUMNS
    return identifiers, frozenset(c.name for c in columns if c.phi) - identifiers


def identifier_columns() -> frozenset[str]:
    return _flagged()[0]


def phi_columns() -> frozenset[str]:
    """Every column name whose values are PHI in some table."""
    identifiers, others = _flagged()
    return identifiers | others


def mask_identifier(value: object) -> str:
    """Keep only the last two characters, enough to tell rows apart in a preview."""
    if value is None:
        return ""
    text = str(value)
    if len(text) <= 2:
        return "*" * len(text)
    return "*" * (len(text) - 2) + text[-2:]


def mask_text(text: str | None) -> str:
    """Mask anything shaped like a member id, MBI or vendor reference inside free text."""
    if text is None:
        return ""
    return _IDENTIFIER_TOKENS.sub(lambda m: mask_identifier(m.group(0)), text)


def mask_value(column: str, value: object, identifiers: frozenset[str] | set[str] | None = None) -> str:
    """A value as it may be shown: `column` decides whether it is an identifier, other PHI or neither."""
    if value is None:
        return "null"
    if column in (identifiers if identifiers is not None else identifier_columns()):
        return mask_identifier(value)
    if column in phi_columns():
        return HIDDEN
    return mask_text(str(value))


def markdown_preview(columns: list[str], rows: list[tuple], identifiers: frozenset[str] | set[str] | None = None) -> str:
    """A Markdown table with PHI columns masked and other text scrubbed of identifiers.

    `identifiers` adds a source's own identifier columns (a vendor's name for its member reference)."""
    extra = identifier_columns() | frozenset(identifiers or ())

    def cell(column: str, value: object) -> str:
        shown = "" if value is None else mask_value(column, value, extra)
        return shown.replace("|", "\\|").replace("\n", " ")[:60]

    header = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(cell(c, v) for c, v in zip(columns, row)) + " |" for row in rows]
    return "\n".join([header, rule, *body])
