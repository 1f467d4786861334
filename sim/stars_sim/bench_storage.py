"""Bronze storage: one provider's delivered rows written as a DuckDB table (as bronze keeps them) and as
Parquet per delivered file, side by side in one process.

    python -m stars_sim.bench_storage --landing DIR [--provider engage] [--day 2026-10-01] [--files N]

Loads the provider's day (its first N files) into an empty warehouse with the bronze loader, so the rows are
exactly those bronze holds. Then, file by file as bronze writes them, the same rows go to:

  table            a second DuckDB database, into a table made from the same bronze spec (its declared
                   compression), one transaction, then a checkpoint (when DuckDB compresses and writes)
  parquet zstd     one Parquet file per delivered file, zstd
  parquet snappy   the same, snappy

and each copy is then scanned whole (every column hashed), as silver's candidate pass reads bronze; the scans
must agree (same rows, same values) or the bench exits 1. The figures weigh the issue's lever "bronze kept as compressed Parquet per delivered file": what writing and reading the
rows costs in each form, on this machine, in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from stars_assets.lib.bronze.landing import inventory
from stars_assets.lib.bronze.load import bronze_table, load_partition
from stars_assets.lib.providers import load_registry
from stars_assets.lib.warehouse import configure_connection
from stars_sim.bench import BENCH_DAY

PARQUET_CODECS = ("zstd", "snappy")


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def timed(action) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True, help="a generated landing folder (make bench's workdir/landing)")
    parser.add_argument("--provider", default="engage")
    parser.add_argument(
        "--day", type=date.fromisoformat, default=BENCH_DAY, help=f"delivery day (default {BENCH_DAY}, as make bench)"
    )
    parser.add_argument("--files", type=int, help="only the day's first N files (default: all)")
    args = parser.parse_args(argv)

    provider = next((p for p in load_registry() if p.name == args.provider), None)
    if provider is None:
        parser.error(f"no provider named {args.provider!r}")
    entries = [e for e in inventory(provider, args.landing / provider.name, time.time()) if e.partition_date == args.day]
    entries = entries[: args.files] if args.files else entries
    if not entries:
        parser.error(f"no {provider.name} files of {args.day} under {args.landing / provider.name}")

    with tempfile.TemporaryDirectory(prefix="stars-bench-storage-") as folder:
        work = Path(folder)
        con = configure_connection(duckdb.connect(str(work / "warehouse.duckdb")))
        seconds = timed(lambda: load_partition(con, provider, args.landing, args.day, "bench-storage", entries=entries))
        spec = bronze_table(provider, provider.datasets[0])
        source = spec.qualified_name
        files = [row[0] for row in con.execute(f"SELECT DISTINCT _source_file FROM {source} ORDER BY 1").fetchall()]
        rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        print(f"bronze loader: {len(files)} files, {rows:,} rows of {source} in {seconds:.1f} s")
        con.execute("CHECKPOINT")
        per_file = f"SELECT * FROM {source} WHERE _source_file = $file"
        results: list[tuple[str, float, float, float]] = []  # form, write s, scan s, MB
        scanned: dict[str, tuple] = {}

        def scan(name: str, relation: str) -> float:
            """Every column of every row hashed: the copies must agree with bronze."""
            began = time.perf_counter()
            scanned[name] = con.execute(f"SELECT count(*), sum(hash({', '.join(spec.column_names)})) FROM {relation}").fetchone()
            return time.perf_counter() - began

        # The table copy lives in a database of its own, so its size is its file's.
        con.execute(f"ATTACH '{work / 'table.duckdb'}' AS copy")
        con.execute("USE copy")
        con.execute(dataclasses.replace(spec, qualified_name=f"main.{spec.name}").ddl())
        con.execute("USE warehouse")
        table_copy = f"copy.main.{spec.name}"

        def write_table():
            con.execute("BEGIN TRANSACTION")
            for file in files:
                con.execute(f"INSERT INTO {table_copy} {per_file}", {"file": file})
            con.execute("COMMIT")
            con.execute("CHECKPOINT copy")

        written = timed(write_table)
        results.append(("table (bronze spec)", written, scan("table", table_copy), _size_mb(work / "table.duckdb")))

        for codec in PARQUET_CODECS:
            target = work / f"parquet_{codec}"
            target.mkdir()

            def write_parquet(target=target, codec=codec):
                for number, file in enumerate(files):
                    con.execute(
                        f"COPY ({per_file}) TO '{target / f'{number:05d}.parquet'}' (FORMAT parquet, COMPRESSION {codec})",
                        {"file": file},
                    )

            written = timed(write_parquet)
            results.append((f"parquet {codec}", written, scan(codec, f"read_parquet('{target}/*.parquet')"), _size_mb(target)))
        scan("bronze", source)
        con.close()

    base_write, base_read = results[0][1], results[0][2]
    print(f"\n{'form':<22}{'write':>10}{'read':>10}{'size':>11}{'write/table':>13}{'read/table':>12}")
    for form, written, scanned_in, size in results:
        print(
            f"{form:<22}{written:>8.2f} s{scanned_in:>8.2f} s{size:>8.0f} MB{written / base_write:>13.2f}{scanned_in / base_read:>12.2f}"
        )
    same = len(set(scanned.values())) == 1
    print(f"same rows in every form: {'yes' if same else 'NO: ' + repr(scanned)}")
    print(
        f"rows={rows} files={len(files)} "
        + " ".join(f"{n.split()[-1]}_write_ratio={w / base_write:.3f}" for n, w, _, _ in results[1:])
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
