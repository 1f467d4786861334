"""The generator's own encoding tables: what each vendor writes for a real-world event.

These are kept independent of the provider YAML on purpose, so the tests compare two sides
that were written separately (the generator's truth against the pipeline's mapping).
"""

from __future__ import annotations

import datetime as dt

# The simulation always starts here, whatever the delivery window, so a day's files do not
# depend on where a window starts. Vendor keys encode the day offset in 3 digits, hence the end.
EPOCH = dt.date(2026, 1, 1)
LAST_SUPPORTED_DAY = EPOCH + dt.timedelta(days=999)

# Measures a member-level care gap can belong to (bit i of a member's open-gap mask).
MEASURES = ("BCS", "COL", "EED", "GSD", "CBP", "TRC")
CMS_MEASURE_ID = {"BCS": "C01", "COL": "C02", "EED": "C11", "GSD": "C12", "CBP": "C14", "TRC": "C20"}

CONTRACTS = (  # contract id, region
    ("H1111", "NORTH"),
    ("H2222", "SOUTH"),
    ("H3333", "EAST"),
    ("H4444", "WEST"),
    ("H5555", "NORTH"),
)
CONTRACT_MEMBER_SHARE = (0.26, 0.22, 0.20, 0.17, 0.15)
# Which regional EMR books a member's appointments.
EMR_BY_REGION = {"NORTH": "emr_north", "EAST": "emr_north", "SOUTH": "emr_south", "WEST": "emr_south"}

OUTREACH_PROVIDERS = ("ihwa", "engage", "dialer")
EMR_PROVIDERS = ("emr_north", "emr_south")
TEXT_PROVIDERS = OUTREACH_PROVIDERS + EMR_PROVIDERS
ALL_PROVIDERS = TEXT_PROVIDERS + ("edw",)

# Local time zones the vendors write in (engage writes epoch milliseconds, UTC).
ZONE = {
    "ihwa": "America/Chicago",
    "dialer": "America/New_York",
    "emr_north": "America/New_York",
    "emr_south": "America/Chicago",
}

# --- engage -----------------------------------------------------------------------------
ENGAGE_CHANNELS = ("sms", "email")
ENGAGE_CHANNEL_CANONICAL = {"sms": "SMS", "email": "EMAIL"}
ENGAGE_EVENTS = ("sent", "delivered", "failed", "clicked", "replied", "opted_out")
ENGAGE_EVENT_CANONICAL = {
    "sent": "ATTEMPTED",
    "delivered": "DELIVERED",
    "failed": "FAILED",
    "clicked": "ENGAGED",
    "replied": "REACHED",
    "opted_out": "OPTED_OUT",
}
# A message ends in one of these outcomes; each outcome is a fixed sequence of events.
ENGAGE_OUTCOMES = ("failed", "delivered", "clicked", "replied", "clicked_replied", "opted_out")
ENGAGE_OUTCOME_EVENTS = {
    "failed": ("sent", "failed"),
    "delivered": ("sent", "delivered"),
    "clicked": ("sent", "delivered", "clicked"),
    "replied": ("sent", "delivered", "replied"),
    "clicked_replied": ("sent", "delivered", "clicked", "replied"),
    "opted_out": ("sent", "delivered", "opted_out"),
}
ENGAGE_OUTCOME_PROB = {
    "sms": (0.05, 0.74, 0.09, 0.07, 0.02, 0.03),
    "email": (0.06, 0.785, 0.12, 0.01, 0.005, 0.02),
}

# --- dialer -----------------------------------------------------------------------------
DIALER_AGENT_TYPES = ("LIVE", "IVR")
DIALER_AGENT_CANONICAL = {"LIVE": "LIVE_CALL", "IVR": "IVR"}
DIALER_DISPOSITIONS = ("CONNECTED", "LEFT_VM", "NO_ANSWER", "BUSY", "WRONG_NUMBER", "REFUSED")
DIALER_DISPOSITION_CANONICAL = {
    "CONNECTED": "REACHED",
    "LEFT_VM": "DELIVERED",
    "NO_ANSWER": "ATTEMPTED",
    "BUSY": "ATTEMPTED",
    "WRONG_NUMBER": "FAILED",
    "REFUSED": "OPTED_OUT",
}
DIALER_DISPOSITION_PROB = {
    "LIVE": (0.30, 0.24, 0.30, 0.06, 0.04, 0.06),
    "IVR": (0.22, 0.30, 0.34, 0.07, 0.04, 0.03),
}

# --- ihwa -------------------------------------------------------------------------------
IHWA_STATUSES = ("SCH", "CMP", "CXL", "NSH")
IHWA_STATUS_CANONICAL = {"SCH": "SCHEDULED", "CMP": "COMPLETED", "CXL": "CANCELLED", "NSH": "NO_SHOW"}
IHWA_OUTCOMES = ("CMP", "CXL", "NSH")
IHWA_OUTCOME_PROB = (0.72, 0.14, 0.14)
# Chance that a completed in-home visit closes an addressed gap (a mammogram cannot be done at home).
IHWA_CLOSE_PROB = {"BCS": 0.03, "COL": 0.5, "EED": 0.4, "GSD": 0.55, "CBP": 0.7, "TRC": 0.8}

# --- appointments (both EMRs) -----------------------------------------------------------
APPOINTMENT_STATUSES = ("BOOKED", "RESCHEDULED", "CANCELLED", "NO_SHOW", "COMPLETED")
HL7_TRIGGER = {"BOOKED": "S12", "RESCHEDULED": "S13", "COMPLETED": "S14", "CANCELLED": "S15", "NO_SHOW": "S26"}
HL7_FILLER_STATUS = {
    "BOOKED": "Booked",
    "RESCHEDULED": "Booked",
    "COMPLETED": "Complete",
    "CANCELLED": "Cancelled",
    "NO_SHOW": "Noshow",
}
FHIR_STATUS = {
    "BOOKED": "booked",
    "RESCHEDULED": "booked",
    "COMPLETED": "fulfilled",
    "CANCELLED": "cancelled",
    "NO_SHOW": "noshow",
}
APPOINTMENT_OUTCOMES = ("COMPLETED", "CANCELLED", "NO_SHOW")
APPOINTMENT_OUTCOME_PROB = (0.78, 0.10, 0.12)
APPOINTMENT_RESCHEDULE_PROB = 0.15
APPOINTMENT_CLOSE_PROB = 0.85

# --- edw --------------------------------------------------------------------------------
DRUG_CLASSES = ("DIABETES", "RASA", "STATIN")
ADHERENCE_MEASURE = {"DIABETES": "D08", "RASA": "D09", "STATIN": "D10"}
CLOSE_SOURCES = ("CLAIM", "IN_HOME", "EMR")
CAHPS_MEASURES = ("C22", "C23", "C24", "C25", "C26", "C27")

# Free-text names vendors write; some with letters outside ASCII (all in Windows-1252).
NURSE_NAMES = (
    "José Peña",
    "Mary Johnson",
    "Renée Côté",
    "Linda Smith",
    "Ana Núñez",
    "Patricia Brown",
    "Zoë Müller",
    "Karen Davis",
    "François Dubois",
    "Susan Miller",
    "Björn Ångström",
    "Deborah Wilson",
    "Siobhán O'Brien",
    "Angela Moore",
    "Chloé Martin",
    "Denise Taylor",
)
AGENT_NAMES = (
    "Carlos Gómez",
    "Jessica Lee",
    "Michael Scott",
    "Inés Sánchez",
    "David Kim",
    "Laura Chen",
    "Jürgen Weiß",
    "Ashley Clark",
    "Brian Lewis",
    "Mónica Ruiz",
    "Kevin Walker",
    "Amélie Roy",
)
NON_ASCII_NURSE = "José Peña"
NON_ASCII_AGENT = "Carlos Gómez"
