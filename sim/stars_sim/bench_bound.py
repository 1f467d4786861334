"""The least two stored layers can cost: a JSON-lines provider's day read by the bench's floor, and written as
bronze and then silver with nothing but what two layers must do, side by side in one process.

    python -m stars_sim.bench_bound --landing DIR [--provider engage] [--day 2026-10-01] [--rounds 2] [--files N]

Each round, on an empty database each, in this order:

  floor          the bench's floor read of the day's files (FLOOR_READS in bench.py): one statement, a checkpoint
  least bronze   each file's lines numbered and parsed once (one json_extract_string), inserted into the bronze
                 table with its file and line; no validity or key check, no undeclared keys, no record hash
  least silver   those rows projected once more to the outreach columns by the project's own mapping
                 (candidates_sql: key, member reference, channel, type, time) with the event's md5 id, written
                 to a table; no member resolution, validation, deduplication, quarantine or reconciliation
  bronze loader  the project's bronze loader (load_partition), as the asset runs it

The least bronze and the loader must hold the same rows (every declared column and the file and line, hashed),
or the bench exits 1. The files must be clean, as make bench generates them: neither the floor nor the least
bronze checks a line, so a line that is not JSON stops them, and the bench says so and exits 1. The ratios to
the floor say how much of the bench's budget (3.0 times the floor) the two writes take before anything a layer
guarantees is paid for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from stars_assets.lib.bronze.landing import inventory
from stars_assets.lib.bronze.load import bronze_table, load_partition
from stars_assets.lib.bronze.readers import _compression, _jsonl_parse_params, quote_identifier
from stars_assets.lib.providers import load_registry
from stars_assets.lib.silver.event_kinds import OUTREACH
from stars_assets.lib.silver.events import FILES_SQL, candidates_sql
from stars_assets.lib.silver.expressions import local_hour_params
from stars_assets.lib.silver.tables import EVENT_ID
from stars_assets.lib.warehouse import configure_connection
from stars_sim.bench import BENCH_DAY, FLOOR_READS
from stars_sim.bench_storage import timed

LINES_SQL = """
CREATE OR REPLACE TEMP TABLE least_lines AS
SELECT row_number() OVER () AS line, raw
FROM read_csv($path, columns = {'raw': 'VARCHAR'}, delim = chr(1), quote = '', escape = '', header = false,
              auto_detect = false, compression = $compression)
"""
LEAST_BRONZE_SQL = """
INSERT INTO {table} ({columns}, _source_file, _source_row, _partition_date, _ingested_at, _record_hash)
SELECT {values}, $file, line, $day, now()::TIMESTAMP, ''
FROM (SELECT line, json_extract_string(raw, $paths) AS v FROM least_lines)
"""
LEAST_SILVER_SQL = "CREATE TABLE least_silver AS SELECT {event_id} AS event_id, c.* FROM ({candidates}) AS c"


def _fresh(folder: Path, name: str) -> duckdb.DuckDBPyConnection:
    for path in folder.glob(f"{name}.duckdb*"):
        path.unlink()
    return configure_connection(duckdb.connect(str(folder / f"{name}.duckdb")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True, help="a generated landing folder (make bench's workdir/landing)")
    parser.add_argument("--provider", default="engage", help="a JSON-lines outreach provider (default engage)")
    parser.add_argument(
        "--day", type=date.fromisoformat, default=BENCH_DAY, help=f"delivery day (default {BENCH_DAY}, as make bench)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each timing every form once (default 2)")
    parser.add_argument("--files", type=int, help="only the day's first N files (default: all)")
    args = parser.parse_args(argv)

    provider = next((p for p in load_registry() if p.name == args.provider), None)
    if provider is None or provider.format != "jsonl" or provider.kind != OUTREACH.provider_kind:
        parser.error(f"{args.provider!r} is not a JSON-lines outreach provider")
    if args.provider not in FLOOR_READS:
        parser.error(f"the bench's floor does not read {args.provider!r}")
    landed = inventory(provider, args.landing / provider.name, time.time())
    readable = [e for e in landed if e.partition_date == args.day and e.status is None]
    entries = readable[: args.files] if args.files else readable
    if not entries:
        parser.error(f"no {provider.name} files of {args.day} under {args.landing / provider.name}")
    floor_reader = FLOOR_READS[args.provider][1]
    dataset = provider.dataset(provider.outreach.dataset)
    spec = bronze_table(provider, dataset)
    declared = [c.column for c in dataset.columns]
    lineage = ", ".join(declared + ["_source_file", "_source_row"])
    compression = _compression(provider)

    def floor(con) -> None:
        con.execute(f"CREATE TABLE floor AS SELECT * FROM {floor_reader}", {"files": [str(e.path) for e in entries]})
        con.execute("CHECKPOINT")

    def least_bronze(con) -> None:
        con.execute(spec.ddl())
        insert = LEAST_BRONZE_SQL.format(
            table=spec.qualified_name,
            columns=", ".join(quote_identifier(c) for c in declared),
            values=", ".join(f"v[{i}]" for i in range(1, len(declared) + 1)),
        )
        paths = _jsonl_parse_params(dataset)["paths"]  # the loader's JSON paths of the declared fields
        for entry in entries:
            con.execute(LINES_SQL, {"path": str(entry.path), "compression": compression})
            con.execute(insert, {"file": entry.relative, "day": args.day, "paths": paths})
        con.execute("DROP TABLE least_lines")
        con.execute("CHECKPOINT")

    def least_silver(con) -> None:
        candidates, params = candidates_sql(OUTREACH, [provider])
        con.execute(FILES_SQL, {"files": [e.relative for e in entries]})
        sql = LEAST_SILVER_SQL.format(event_id=EVENT_ID.format(row="c."), candidates=candidates)
        con.execute(sql, {**params, "day": args.day, **local_hour_params(params, args.day)})
        con.execute("CHECKPOINT")

    def loader(con) -> None:
        load_partition(con, provider, args.landing, args.day, "bench-bound", entries=entries)
        con.execute("CHECKPOINT")

    def rows_of(con) -> tuple:
        return con.execute(f"SELECT count(*), sum(hash({lineage})) FROM {spec.qualified_name}").fetchone()

    print(f"{provider.name} {args.day}: {len(entries)} files, {args.rounds} round(s)", flush=True)
    figures: dict[str, list[float]] = {"floor": [], "least bronze": [], "least silver": [], "bronze loader": []}
    same = True
    with tempfile.TemporaryDirectory(prefix="stars-bench-bound-") as folder:
        work = Path(folder)
        for round_number in range(1, args.rounds + 1):
            try:
                with _fresh(work, "floor") as con:
                    figures["floor"].append(timed(lambda con=con: floor(con)))
                with _fresh(work, "least") as con:
                    figures["least bronze"].append(timed(lambda con=con: least_bronze(con)))
                    figures["least silver"].append(timed(lambda con=con: least_silver(con)))
                    least_rows = rows_of(con)
            except duckdb.Error as error:
                # Neither the floor nor the least bronze checks a line; the loader quarantines what they stop on.
                print(f"not comparable: {str(error).splitlines()[0]}\nuse clean files, as make bench generates them")
                return 1
            with _fresh(work, "loader") as con:
                figures["bronze loader"].append(timed(lambda con=con: loader(con)))
                loader_rows = rows_of(con)
            same = same and least_rows == loader_rows
            print(
                f"  round {round_number}: "
                + ", ".join(f"{name} {seconds[-1]:.1f} s" for name, seconds in figures.items())
                + f"; {least_rows[0]:,} rows",
                flush=True,
            )

    floor_seconds = min(figures["floor"])
    best = {name: min(seconds) for name, seconds in figures.items()}
    print(f"\n{'form':<16}{'best':>10}{'/ floor':>10}")
    for name, seconds in best.items():
        print(f"{name:<16}{seconds:>8.1f} s{seconds / floor_seconds:>10.2f}")
    print(f"same rows in the least bronze and the loader's: {'yes' if same else 'NO'}")
    two_layers = (best["least bronze"] + best["least silver"]) / floor_seconds
    loader_ratio = best["bronze loader"] / best["least bronze"]
    print(f"least_two_layers_ratio={two_layers:.2f} loader_vs_least_bronze={loader_ratio:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
