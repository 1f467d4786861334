"""Member identity: what each kind of member identifier looks like and how it resolves.

Vendors send the internal member id, the Medicare Beneficiary Identifier (MBI) or a vendor
reference; the enrollment extract carries all three, so every kind resolves to member_id.
"""

# CMS's MBI format: 11 characters; positions 1, 4, 7, 10, 11 numeric (1 is 1-9); 2, 5, 8, 9
# alphabetic without S, L, O, I, B, Z; 3 and 6 alphanumeric from the same alphabet.
_MBI_ALPHA = "[AC-HJKMNP-RT-Y]"
_MBI_ALNUM = "[0-9AC-HJKMNP-RT-Y]"
MBI_PATTERN = (
    f"^[1-9]{_MBI_ALPHA}{_MBI_ALNUM}[0-9]{_MBI_ALPHA}{_MBI_ALNUM}[0-9]{_MBI_ALPHA}{_MBI_ALPHA}[0-9][0-9]$"
)

IDENTIFIER_PATTERNS = {
    "member_id": r"^M[0-9]{9}$",
    "mbi": MBI_PATTERN,
    "vendor_ref": r"^VR[0-9A-F]{8}$",
}

# SQL: is the candidate row `c`'s member_ref shaped like its identifier type? One constant
# pattern per branch (bound as $pattern_<type>): DuckDB compiles a constant pattern once, while a
# pattern chosen per row is compiled per row.
MEMBER_REF_IS_WELL_FORMED = """(CASE c.identifier_type
    WHEN 'member_id' THEN regexp_full_match(c.member_ref, $pattern_member_id)
    WHEN 'mbi' THEN regexp_full_match(c.member_ref, $pattern_mbi)
    ELSE regexp_full_match(c.member_ref, $pattern_vendor_ref) END)"""


def identifier_pattern_params() -> dict[str, str]:
    return {f"pattern_{kind}": pattern for kind, pattern in IDENTIFIER_PATTERNS.items()}
