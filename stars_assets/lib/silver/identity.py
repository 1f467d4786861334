"""Member identity, in one place: what each kind of member identifier looks like, how a vendor's
identifier is read from its bronze row, and how it resolves to a member through the crosswalk.

Vendors send the internal member id, the Medicare Beneficiary Identifier (MBI) or a vendor
reference; the enrollment extract carries all three, so every kind resolves to member_id through
silver.member_identifiers. A row whose identifier is malformed or unknown is quarantined
(IDENTITY_RULES, checked before any other rule of the event engine).
"""

from __future__ import annotations

# CMS's MBI format: 11 characters; positions 1, 4, 7, 10, 11 numeric (1 is 1-9); 2, 5, 8, 9
# alphabetic without S, L, O, I, B, Z; 3 and 6 alphanumeric from the same alphabet.
_MBI_ALPHA = "[AC-HJKMNP-RT-Y]"
_MBI_ALNUM = "[0-9AC-HJKMNP-RT-Y]"
MBI_PATTERN = f"^[1-9]{_MBI_ALPHA}{_MBI_ALNUM}[0-9]{_MBI_ALPHA}{_MBI_ALNUM}[0-9]{_MBI_ALPHA}{_MBI_ALPHA}[0-9][0-9]$"

IDENTIFIER_PATTERNS = {
    "member_id": r"^M[0-9]{9}$",
    "mbi": MBI_PATTERN,
    "vendor_ref": r"^VR[0-9A-F]{8}$",
}


# One constant pattern per branch (bound as $pattern_<type>): DuckDB compiles a constant pattern once,
# while a pattern chosen per row is compiled per row.
def is_well_formed_sql(identifier_type: str, value: str) -> str:
    """SQL: is the identifier `value` shaped like its `identifier_type` (both SQL expressions)?"""
    return f"""(CASE {identifier_type}
    WHEN 'member_id' THEN regexp_full_match({value}, $pattern_member_id)
    WHEN 'mbi' THEN regexp_full_match({value}, $pattern_mbi)
    ELSE regexp_full_match({value}, $pattern_vendor_ref) END)"""


# The resolved member of candidate row `c` (alias m), and the rules that reject a row whose
# identifier does not resolve: (reason, condition over c and m, quarantine detail over the rejected row r).
# An identifier the crosswalk gives to more than one member resolves to none of them: one join row
# per identifier (never one per member, which would load the event twice) counts its members.
# Only well-formed crosswalk identifiers are joined, so a resolved identifier is well-formed and the
# shape is only checked, per row, for the few that do not resolve (a regular expression over every
# event of a day is a tenth of its validation).
RESOLVE_JOIN = f"""LEFT JOIN (
    SELECT id_type, id_value, min(member_id) AS member_id, min(contract_id) AS contract_id, min(region) AS region,
           count(DISTINCT member_id) AS members
    FROM silver.member_identifiers
    WHERE {is_well_formed_sql("id_type", "id_value")}
    GROUP BY id_type, id_value
) AS m ON m.id_type = c.identifier_type AND m.id_value = c.member_ref"""
RESOLVED_COLUMNS = "m.member_id, m.contract_id, m.region"
IDENTITY_RULES = (
    (
        "malformed_member_id",
        f"c.member_ref IS NULL OR (m.member_id IS NULL AND NOT {is_well_formed_sql('c.identifier_type', 'c.member_ref')})",
        "r.identifier_type || ' does not have the expected shape'",
    ),
    ("unknown_member", "m.member_id IS NULL", "r.identifier_type || ' not in the enrollment crosswalk'"),
    ("ambiguous_member", "m.members > 1", "r.identifier_type || ' belongs to more than one member in the enrollment crosswalk'"),
)


def normalized_identifier_sql(expression: str, identifier_type: str | None) -> str:
    """An identifier as compared: trimmed; an MBI also without dashes or spaces and in upper case
    (CMS prints MBIs as 1EG4-TE5-MK73, and vendors write them in either case)."""
    if identifier_type == "mbi":
        return f"upper(regexp_replace(trim({expression}), '[- ]', '', 'g'))"
    return f"trim({expression})"


def member_ref_sql(column: str, identifier_type: str | None = None) -> str:
    """The vendor's member identifier as read from bronze row `b`, normalized for its type."""
    return normalized_identifier_sql(f"b.{column}", identifier_type)


def identifier_pattern_params() -> dict[str, str]:
    return {f"pattern_{kind}": pattern for kind, pattern in IDENTIFIER_PATTERNS.items()}
