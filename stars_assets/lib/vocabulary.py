"""The canonical vocabularies, defined once: every provider mapping, contract, SQL statement and
column description takes its values from here (SQL gets them as bound lists or through `sql_list`).
"""

from __future__ import annotations

from collections.abc import Iterable

# Outreach: how a member was contacted and what happened.
CHANNELS = ("SMS", "EMAIL", "LIVE_CALL", "IVR", "MAIL", "IN_HOME")
EVENT_TYPES = (
    "ATTEMPTED",
    "DELIVERED",
    "REACHED",
    "ENGAGED",
    "FAILED",
    "OPTED_OUT",
    "SCHEDULED",
    "COMPLETED",
    "CANCELLED",
    "NO_SHOW",
)
# Event types that mean the member was actually reached (gold's reach and attribution).
REACHING_EVENT_TYPES = ("REACHED", "ENGAGED", "COMPLETED")
# The member acted (clicked, replied, completed), beyond being reached.
ENGAGING_EVENT_TYPES = ("ENGAGED", "COMPLETED")
OPTED_OUT = "OPTED_OUT"

# Appointments: the state of a booked visit.
APPOINTMENT_STATUSES = ("BOOKED", "RESCHEDULED", "CANCELLED", "NO_SHOW", "COMPLETED")
BOOKED, RESCHEDULED, COMPLETED, NO_SHOW = "BOOKED", "RESCHEDULED", "COMPLETED", "NO_SHOW"

# Member-level care-gap measures (the vendors' HEDIS codes) and their stable keys in the CMS measure crosswalk;
# a star year's CMS ids come from the crosswalk (lib/cms/crosswalk.py), never from here.
CARE_GAP_MEASURE_KEYS = {
    "BCS": "breast_cancer_screening",
    "COL": "colorectal_cancer_screening",
    "EED": "diabetes_eye_exam",
    "GSD": "diabetes_blood_sugar_controlled",
    "CBP": "controlling_blood_pressure",
    "TRC": "transitions_of_care",
}
CARE_GAP_MEASURES = tuple(CARE_GAP_MEASURE_KEYS)
OPEN, CLOSED = "OPEN", "CLOSED"
GAP_STATUSES = (OPEN, CLOSED)
# Part D adherence drug classes and the crosswalk keys of their measures (diabetes, RAS antagonists, statins).
ADHERENCE_MEASURE_KEYS = {"DIABETES": "adherence_diabetes", "RASA": "adherence_hypertension", "STATIN": "adherence_statins"}
DRUG_CLASSES = tuple(ADHERENCE_MEASURE_KEYS)

# The kinds of member identifier a vendor may send; each resolves to member_id through the crosswalk.
IDENTIFIER_TYPES = ("member_id", "mbi", "vendor_ref")

# Why a silver row was quarantined: reason code -> what it means.
SILVER_REASONS = {
    "malformed_member_id": "the member identifier does not have the expected shape",
    "unknown_member": "the member identifier is not in the enrollment crosswalk",
    "invalid_timestamp": "a time does not parse",
    "future_timestamp": "the event is stamped after its delivery",
    "start_before_booking": "the appointment starts before it was booked",
    "unknown_code": "a vendor code has no canonical mapping",
    "missing_event_key": "the vendor's event key is empty",
    "ambiguous_member": "the member identifier belongs to more than one member in the crosswalk",
    "conflicting_duplicate": "the same key (event or member) came twice with different content; every version is kept here",
    "nonexistent_local_time": "a local time falls in the hour the spring daylight-saving change skips",
    "past_timestamp": "a time is before the program year (whatever its unit)",
}
MEMBER_REASONS = ("unknown_member", "malformed_member_id", "ambiguous_member")
TIME_REASONS = ("future_timestamp", "invalid_timestamp", "start_before_booking", "nonexistent_local_time", "past_timestamp")


def sql_list(values: Iterable[str]) -> str:
    """A parenthesized SQL list of string literals, for constants written into a statement."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def sql_case(expression: str, mapping: dict[str, str]) -> str:
    """CASE expression WHEN key THEN value ... END, from a vocabulary map."""
    branches = " ".join(f"WHEN {sql_list([k])[1:-1]} THEN {sql_list([v])[1:-1]}" for k, v in mapping.items())
    return f"CASE {expression} {branches} END"
