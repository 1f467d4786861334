"""Member identifiers are PHI: anything shown in logs, metadata previews or alerts is masked."""

from __future__ import annotations

import re

# Columns that carry a member identifier in any layer.
MEMBER_IDENTIFIER_COLUMNS = frozenset(
    {"member_id", "mbi", "vendor_ref", "member_ref", "patient_id", "patient_identifier"}
)
_IDENTIFIER_TOKENS = re.compile(r"\b(?:M\d{9}|VR[0-9A-F]{8}|[1-9][A-Z0-9]{10})\b")


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


def markdown_preview(columns: list[str], rows: list[tuple], identifier_columns: set[str] | frozenset[str] = MEMBER_IDENTIFIER_COLUMNS) -> str:
    """A Markdown table with identifier columns masked and other text scrubbed of identifiers."""
    def cell(column: str, value: object) -> str:
        shown = mask_identifier(value) if column in identifier_columns else mask_text(None if value is None else str(value))
        return shown.replace("|", "\\|").replace("\n", " ")[:60]

    header = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(cell(c, v) for c, v in zip(columns, row)) + " |" for row in rows]
    return "\n".join([header, rule, *body])
