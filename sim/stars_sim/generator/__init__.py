"""Deterministic vendor feed generator: a seeded world of MA-PD members, their care gaps and the
outreach that targets them, written as each vendor's native files with faults and ground truth.

Plain Python, NumPy, Arrow and DuckDB (no Dagster). See docs/vendor-formats.md for the contract.

    from stars_sim.generator import generate
    generate("data/landing", seed=7, members=2000, days=14)
"""

from .faults import DEFAULT_RATES, FAULT_KINDS
from .run import RunSummary, generate

__all__ = ["generate", "RunSummary", "FAULT_KINDS", "DEFAULT_RATES"]
