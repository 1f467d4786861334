"""Bronze over a demo-sized world: time per provider for a range of delivery days.

    python -m stars_sim.bench_bronze [--days 30] [--members 2000] [--seed 7] [--landing DIR]

Generates the world (as `make demo` does, smaller by default) unless --landing names one already
generated, then loads every provider's days into an empty warehouse the way the bronze asset does
(one folder listing, then each day, then the day's reconciliation) and prints, per provider, the
days, files read, rows loaded and wall seconds. Many small files (engage's hourly micro-batches)
are where the cost per file shows.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from stars_assets.lib.bronze.landing import inventory
from stars_assets.lib.bronze.load import load_partition
from stars_assets.lib.bronze.quality import reconciliation_result
from stars_assets.lib.providers import load_registry
from stars_assets.lib.warehouse import configure_connection
from stars_sim import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--landing", type=Path, help="a landing folder generated already")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stars-bench-bronze-") as folder:
        landing = args.landing or Path(folder) / "landing"
        if args.landing is None:
            start = date.today() - timedelta(days=args.days + 1)
            with contextlib.redirect_stdout(io.StringIO()):
                generate.main(
                    ["--seed", str(args.seed), "--members", str(args.members), "--days", str(args.days)]
                    + ["--start-date", start.isoformat(), "--out", str(landing)]
                )
            settled = time.time() - 86400  # files older than the quiet period: none is "still being written"
            for path in landing.rglob("*"):
                if path.is_file():
                    os.utime(path, (settled, settled))
        con = configure_connection(duckdb.connect(str(Path(folder) / "warehouse.duckdb")))
        total = 0.0
        for provider in load_registry():
            entries = inventory(provider, landing / provider.name, time.time())
            days = sorted({e.partition_date for e in entries if e.partition_date is not None})
            started = time.perf_counter()
            files = rows = 0
            for day in days:
                load = load_partition(con, provider, landing, day, "bench", entries=entries)
                reconciliation_result(con, provider, landing / provider.name, [day], entries=entries)
                files, rows = files + load.files_read, rows + load.rows_loaded
            seconds = time.perf_counter() - started
            total += seconds
            print(f"{provider.name:<12} {len(days):>4} days {files:>6} files {rows:>9} rows {seconds:>7.1f} s", flush=True)
        print(f"{'total':<12} {total:>44.1f} s")
        con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
