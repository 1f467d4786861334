"""Every run of this code location executes its steps in one process (jobs, asset backfills from the UI, sensor runs).

Almost every step writes the one DuckDB file, and the one-slot warehouse pool admits one such step at a
time anyway: a process per step would only add a Python start-up and a definitions load to each step.
"""

import dagster as dg


@dg.definitions
def execution() -> dg.Definitions:
    return dg.Definitions(executor=dg.in_process_executor)
