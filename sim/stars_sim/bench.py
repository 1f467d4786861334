"""make bench: one delivery day at the payer's volume through the project, against plain DuckDB.

    python -m stars_sim.bench [--rows-per-day 28600000] [--day 2026-10-01] [--days 1] [--members 100000]
                                     [--seed 7] [--workdir DIR] [--keep]

Generates one delivery day (outreach rows across ihwa, engage and dialer in the generator's
format mix, plus the EMR and warehouse files of that day; row-level faults at their default
rates, file-level faults off so that every file is read by every step), then measures, side by
side and each in its own child process (so peak resident memory is per step):

  (a) full    the project: one real Dagster run (dg.materialize) of the bronze assets, the
              silver assets and the silver contract checks for that partition, on an empty warehouse
  (b) floor   plain DuckDB reading the same files into tables, no transformation
  (c) noop    the same run again, nothing changed
  (d) delta   the same run after a vendor correction: one more file per outreach vendor with 1%
              of the day's records (half of them new, half re-sent with a changed status)
  (e) publish one real Dagster run of the daily publish assets (silver outreach events, appointment
              events, appointments, quarantine) writing the day's partitions to an empty Delta lake
  (f) publish again, nothing changed: must write no Delta commit
  (g) with --days N > 1 only: one real Dagster run of the same assets over the N-day range starting
      at --day (a single-run backfill), on an empty warehouse; its time per day against (a)

Wall time is measured inside the child around the work (the run, or the reads), so interpreter
start and imports are not counted, nor is opening the Dagster instance the run is stored in (a deployment's
is open before its runs; opening one imports its storage's libraries, about 0.7 s); the run's own events are
counted. The child's whole process time is printed beside it. Peak
memory is the child's peak resident set size (wait4's ru_maxrss). The last line is exactly
`ratio_vs_floor=<a/b> noop_ratio=<c/a> delta_ratio=<d/a> peak_rss_gb=<max over a, c, d>`, followed by
`publish_ratio=<e/a> noop_publish_commits=<Delta commits written by f> publish_peak_rss_gb=<max over e, f>`, and
with --days N > 1
`days=<N> per_day_seconds=<g/N> per_day_ratio=<g/N/a> per_row_ratio=<(g/its rows)/(a/its rows)>
backfill_peak_rss_gb=<g's peak>` (1.0: the cost grows linearly with the days; the first day also holds the
warehouse snapshots, so days differ in rows; the backfill's peak is set beside a's single day).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from stars_assets import settings

FULL_DAY_ROWS = 28_600_000
BENCH_DAY = dt.date(2026, 10, 1)  # the delivery day the bench generates and reads by default
DELTA_SHARE = 0.01
DELTA_SUFFIX = "correction"
RESULT_PREFIX = "BENCH_RESULT "
# Every file-level fault off: the floor and the project read the same rows.
FILE_FAULTS_OFF = (
    "redelivered_file",
    "late_file",
    "wrong_encoding",
    "truncated_gzip",
    "empty_file",
    "added_column",
    "missing_required_column",
)
OUTREACH = ("ihwa", "engage", "dialer")

# (table, reader) per dataset of the floor: each reads every file of the day in one statement.
FLOOR_READS = {
    "ihwa": (
        "ihwa/IHWA_ASSESSMENTS_{ymd}*.txt",
        "read_csv($files, delim = '|', quote = '', header = true, all_varchar = true, ignore_errors = true)",
    ),
    "dialer": (
        "dialer/dialer_calls_{ymd}*.csv",
        "read_csv($files, delim = ',', quote = '\"', header = true, all_varchar = true, ignore_errors = true)",
    ),
    "engage": ("engage/engage_events_{ymd}_*.jsonl.gz", "read_json($files, format = 'newline_delimited', compression = 'gzip')"),
    "emr_north": ("emr_north/SIU_{ymd}*.hl7", "read_text($files)"),
    "emr_south": ("emr_south/appointments_{ymd}*.json", "read_json($files)"),
    "edw_members": ("edw/members_{ymd}*.parquet", "read_parquet($files)"),
    "edw_care_gaps": ("edw/care_gaps_{ymd}*.parquet", "read_parquet($files)"),
    "edw_rx_fills": ("edw/rx_fills_{ymd}*.parquet", "read_parquet($files)"),
    "edw_contract_quality": ("edw/contract_quality_{ymd}*.parquet", "read_parquet($files)"),
}


def say(message: str) -> None:
    print(message, flush=True)


def report(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- child steps ----------------------------------------------------------------------------


def step_generate(args) -> None:
    from stars_sim.generator import generate

    landing = Path(args.workdir) / "landing"
    if landing.exists():
        shutil.rmtree(landing)
    began = time.perf_counter()
    summary = generate(
        landing,
        seed=args.seed,
        members=args.members,
        days=args.days,
        start_date=args.day,
        outreach_rows_per_day=args.rows_per_day,
        fault_rates={kind: 0.0 for kind in FILE_FAULTS_OFF},
        progress=lambda message: say(f"    {message}"),
    )
    report(
        {
            "seconds": time.perf_counter() - began,
            "rows": sum(summary.rows_by_provider.values()),
            "rows_by_provider": summary.rows_by_provider,
        }
    )


def _landed(landing: Path, pattern: str) -> list[str]:
    folder, _, glob = pattern.partition("/")
    return sorted(str(p) for p in (landing / folder).glob(glob))


def step_floor(args) -> None:
    import duckdb

    landing = Path(args.workdir) / "landing"
    database = Path(args.workdir) / "floor.duckdb"
    _remove_database(database)
    ymd = args.day.strftime("%Y%m%d")
    rows = 0
    began = time.perf_counter()
    with duckdb.connect(str(database)) as con:
        for table, (pattern, reader) in FLOOR_READS.items():
            files = _landed(landing, pattern.format(ymd=ymd))
            if not files:
                continue
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {reader}", {"files": files})
            count = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            rows += count
            say(f"    {table}: {len(files)} file(s), {count:,} rows")
        con.execute("CHECKPOINT")
    report({"seconds": time.perf_counter() - began, "rows": rows})


def _timed_run(assets: list, resources: dict, first_day: str, last_day: str):
    """One Dagster run of `assets` over the partition range, and its wall time. The instance is opened before the
    clock starts (see the docstring): the run and its own events are timed, not setting up run storage."""
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        began = time.perf_counter()
        result = dg.materialize(
            assets,
            resources=resources,
            tags={"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day},
            raise_on_error=False,
            instance=instance,
        )
        return result, time.perf_counter() - began


def step_run(args) -> None:
    from stars_assets.defs.bronze.assets import bronze_assets
    from stars_assets.defs.resources import build_resources
    from stars_assets.defs.silver import assets as silver
    from stars_assets.defs.silver import checks

    warehouse = Path(args.workdir) / "warehouse.duckdb"
    if args.fresh:
        _remove_database(warehouse)
    assets = [
        *bronze_assets,
        silver.members,
        silver.care_gaps,
        silver.rx_fills,
        silver.outreach_events,
        silver.appointments,
        silver.quarantine,
        checks.check_contract_outreach_events,
        checks.check_contract_appointment_events,
        checks.check_contract_appointments,
        checks.check_contract_members,
        checks.check_contract_care_gaps,
        checks.check_contract_rx_fills,
    ]
    day = args.day.isoformat()
    last_day = (args.day + dt.timedelta(days=args.range_days - 1)).isoformat()
    result, seconds = _timed_run(
        assets,
        build_resources(warehouse=str(warehouse), landing=str(Path(args.workdir) / "landing")),
        day,
        last_day,
    )
    rows_read = 0
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[0] == "bronze":
            metadata = event.materialization.metadata
            read = metadata.get("rows_read") or metadata.get("dagster/row_count")
            rows_read += int(read.value) if read is not None else 0
    evaluations = result.get_asset_check_evaluations()
    failed = sorted(f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed)
    for event in result.all_events:
        if event.is_step_success:
            say(f"    {event.message}")
        elif event.is_step_failure:
            say(f"    step failed: {event.step_key}: {event.event_specific_data.error.message.strip()[:300]}")
    report(
        {"seconds": seconds, "rows": rows_read, "success": result.success, "checks": len(evaluations), "checks_failed": failed}
    )


def step_publish(args) -> None:
    """The day's partitions of the daily lake tables, from the warehouse the full run left."""
    from stars_assets.defs.partitions import daily_partitions
    from stars_assets.defs.publish.assets import publish_assets
    from stars_assets.defs.resources import build_resources

    lake = Path(args.workdir) / "lake"
    if args.fresh and lake.exists():
        shutil.rmtree(lake)
    os.environ["STARS_LAKE_URI"] = str(lake)
    daily = [a for a in publish_assets if a.partitions_def is daily_partitions]
    day = args.day.isoformat()
    result, seconds = _timed_run(
        daily,
        build_resources(warehouse=str(Path(args.workdir) / "warehouse.duckdb"), landing=str(Path(args.workdir) / "landing")),
        day,
        day,
    )
    published = [{k: v.value for k, v in e.materialization.metadata.items()} for e in result.get_asset_materialization_events()]
    for metadata in published:
        say(
            f"    {metadata['table_uri']}: version {metadata['lake_version']}, "
            f"{'committed' if metadata['committed'] else 'no commit'}, {metadata['rows_written']:,} rows written"
        )
    failed = sorted(e.check_name for e in result.get_asset_check_evaluations() if not e.passed)
    report(
        {
            "seconds": seconds,
            "rows": sum(m["rows_written"] for m in published),
            "success": result.success,
            "commits": sum(1 for m in published if m["committed"]),
            "checks_failed": failed,
        }
    )


def step_delta(args) -> None:
    """A vendor correction: per outreach vendor one more file for the day with 1% of its records."""
    import duckdb

    landing = Path(args.workdir) / "landing"
    ymd = args.day.strftime("%Y%m%d")
    written = 0
    began = time.perf_counter()
    with duckdb.connect() as con:
        ihwa = _landed(landing, f"ihwa/IHWA_ASSESSMENTS_{ymd}*.txt")
        total = con.execute(
            "SELECT count(*) FROM read_csv($f, delim = '|', quote = '', header = true, all_varchar = true, ignore_errors = true)",
            {"f": ihwa},
        ).fetchone()[0]
        written += _delta_delimited(
            con,
            ihwa,
            landing / "ihwa" / f"IHWA_ASSESSMENTS_{ymd}_{DELTA_SUFFIX}.txt",
            total,
            delim="|",
            quote="",
            key="RECORD_ID",
            status="VISIT_STATUS",
            statuses=("SCH", "CMP", "CXL", "NSH"),
            write=lambda handle: csv.writer(handle, delimiter="|", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n"),
            encoding="utf-8",
        )
        dialer = _landed(landing, f"dialer/dialer_calls_{ymd}*.csv")
        total = con.execute(
            "SELECT count(*) FROM read_csv($f, delim = ',', quote = '\"', header = true, all_varchar = true, "
            "ignore_errors = true)",
            {"f": dialer},
        ).fetchone()[0]
        written += _delta_delimited(
            con,
            dialer,
            landing / "dialer" / f"dialer_calls_{ymd}_{DELTA_SUFFIX}.csv",
            total,
            delim=",",
            quote='"',
            key="Call ID",
            status="Disposition",
            statuses=("CONNECTED", "LEFT_VM", "NO_ANSWER", "BUSY", "WRONG_NUMBER", "REFUSED"),
            write=lambda handle: csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n"),
            encoding="utf-8-sig",
        )
    written += _delta_engage(landing, ymd)
    report({"seconds": time.perf_counter() - began, "rows": written})


def _delta_delimited(con, files, target: Path, total: int, *, delim, quote, key, status, statuses, write, encoding) -> int:
    wanted = max(2, round(total * DELTA_SHARE))
    relation = con.execute(
        f"SELECT * FROM read_csv($f, delim = $d, quote = $q, header = true, all_varchar = true, ignore_errors = true) LIMIT {wanted}",
        {"f": files, "d": delim, "q": quote},
    )
    header = [d[0] for d in relation.description]
    rows = relation.fetchall()
    k, s = header.index(key), header.index(status)
    with open(target, "w", encoding=encoding, newline="") as handle:
        writer = write(handle)
        writer.writerow(header)
        for number, row in enumerate(rows):
            row = ["" if v is None else v for v in row]
            if number % 2 == 0:
                row[k] = row[k][:1] + "X" + row[k][2:]  # a record the vendor did not send before
            row[s] = statuses[(statuses.index(row[s]) + 1) % len(statuses)] if row[s] in statuses else statuses[0]
            writer.writerow(row)
    say(f"    {target.name}: {len(rows):,} rows")
    return len(rows)


def _delta_engage(landing: Path, ymd: str) -> int:
    files = _landed(landing, f"engage/engage_events_{ymd}_*.jsonl.gz")
    total = sum(_count_lines(Path(f)) for f in files)
    wanted = max(2, round(total * DELTA_SHARE))
    events = ("sent", "delivered", "failed", "clicked", "replied", "opted_out")
    target = landing / "engage" / f"engage_events_{ymd}_{DELTA_SUFFIX}.jsonl.gz"
    written = 0
    # mtime=0 in the gzip header: the same correction is the same bytes every time it is written.
    with gzip.GzipFile(target, "wb", mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as out:
        for name in files:
            with gzip.open(name, "rt", encoding="utf-8") as handle:
                for line in handle:
                    if written >= wanted:
                        break
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if written % 2 == 0:
                        record["event_id"] = hashlib.md5(f"{record['event_id']}:{DELTA_SUFFIX}".encode()).hexdigest()
                    if record.get("event") in events:
                        record["event"] = events[(events.index(record["event"]) + 1) % len(events)]
                    out.write(json.dumps(record, separators=(",", ":")) + "\n")
                    written += 1
            if written >= wanted:
                break
    say(f"    {target.name}: {written:,} rows")
    return written


def _count_lines(path: Path) -> int:
    with gzip.open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def _remove_database(path: Path) -> None:
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)


STEPS = {"generate": step_generate, "floor": step_floor, "run": step_run, "delta": step_delta, "publish": step_publish}


# --- the driver -----------------------------------------------------------------------------


def run_child(args, step: str, *extra: str) -> dict:
    """Run one step in a child process; its own wall time, its process time and its peak RSS."""
    command = [
        sys.executable,
        "-m",
        "stars_sim.bench",
        "--step",
        step,
        "--workdir",
        str(args.workdir),
        "--day",
        args.day.isoformat(),
        "--rows-per-day",
        str(args.rows_per_day),
        "--members",
        str(args.members),
        "--seed",
        str(args.seed),
        "--days",
        str(args.days),
        *extra,
    ]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    result: dict | None = None
    tail: list[str] = []
    for line in child.stdout:
        line = line.rstrip("\n")
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
        elif line.startswith("    "):
            say(line)
        elif " - INFO - " in line:  # the run's own progress lines (one per asset and partition)
            say("    " + line.rsplit(" - ", 1)[-1])
        else:
            tail = (tail + [line])[-30:]
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    process_seconds = time.perf_counter() - began
    if child.returncode != 0 or result is None:
        say("\n".join(tail))
        raise SystemExit(f"bench step {step} failed with exit code {child.returncode}")
    result["process_seconds"] = process_seconds
    result["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9  # Linux reports kilobytes
    return result


def _landing_matches(args) -> bool:
    manifest = Path(args.workdir) / "landing" / "_truth" / "manifest.json"
    if not manifest.exists():
        return False
    options = json.loads(manifest.read_text())["options"]
    return (options["seed"], options["members"], options["start_date"], options["days"], options["outreach_rows_per_day"]) == (
        args.seed,
        args.members,
        args.day.isoformat(),
        args.days,
        args.rows_per_day,
    ) and all(options["fault_rates"].get(kind) == 0.0 for kind in FILE_FAULTS_OFF)


def _remove_deltas(args) -> None:
    for path in (Path(args.workdir) / "landing").glob(f"*/*_{DELTA_SUFFIX}.*"):
        path.unlink()


TABLE = "{:<38}{:>10}{:>14}{:>14}{:>10}{:>10}"


def _line(name: str, result: dict, rows: int | None = None) -> str:
    rows = result["rows"] if rows is None else rows
    rate = rows / result["seconds"] if result["seconds"] else float("inf")
    return TABLE.format(
        name,
        f"{result['seconds']:.2f} s",
        f"{rows:,}",
        f"{rate:,.0f}",
        f"{result['peak_rss_gb']:.2f} GB",
        f"{result['process_seconds']:.1f} s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=FULL_DAY_ROWS,
        help=f"outreach rows in the day across ihwa, engage and dialer (default {FULL_DAY_ROWS:,})",
    )
    parser.add_argument("--day", type=dt.date.fromisoformat, default=BENCH_DAY, help=f"delivery day (default {BENCH_DAY})")
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="days generated from --day; above 1, also time one run backfilling all of them against the single day (default 1)",
    )
    parser.add_argument("--members", type=int, default=100_000, help="members in the generated world (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the landing folder and the databases go "
        "(default: $STARS_DATA_DIR/bench); a landing generated with the same options is reused",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards (the landing is always kept)")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--range-days", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workdir = (args.workdir or settings.data_dir() / "bench").resolve()
    if args.step:
        STEPS[args.step](args)
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    say(
        f"bench: {args.rows_per_day:,} outreach rows a day for {args.days} day(s) from {args.day.isoformat()}, {args.members:,} members, "
        f"{os.cpu_count()} cores, work folder {args.workdir}"
    )
    _remove_deltas(args)
    if _landing_matches(args):
        say("[1/8] landing: reusing the files generated earlier with the same options")
    else:
        say("[1/8] generating the day's files (stars-generate, file-level faults off) ...")
        generated = run_child(args, "generate")
        say(f"      {generated['rows']:,} rows in {generated['seconds']:.1f} s")
    say("[2/8] (b) floor: plain DuckDB reading the files into tables ...")
    floor = run_child(args, "floor")
    say("[3/8] (a) full run: bronze + silver + contract checks for the partition, empty warehouse ...")
    full = run_child(args, "run", "--fresh")
    say("[4/8] (e) publishing the day's partitions to an empty lake ...")
    publish = run_child(args, "publish", "--fresh")
    say("[5/8] (f) publishing again, nothing changed ...")
    noop_publish = run_child(args, "publish")
    say("[6/8] (c) no-change re-run ...")
    noop = run_child(args, "run")
    say("[7/8] writing a 1% vendor correction ...")
    delta_files = run_child(args, "delta")
    say("[8/8] (d) re-run after the 1% correction ...")
    delta = run_child(args, "run")
    backfill = None
    if args.days > 1:
        say(f"[+] (g) backfill: one run over the {args.days} days, empty warehouse ...")
        _remove_deltas(args)
        backfill = run_child(args, "run", "--fresh", "--range-days", str(args.days))

    runs = (("full", full), ("noop", noop), ("delta", delta), ("publish", publish), ("no-change publish", noop_publish))
    for name, result in runs + ((("backfill", backfill),) if backfill else ()):
        if not result["success"] or result["checks_failed"]:
            say(
                f"WARNING: the {name} run {'failed' if not result['success'] else 'passed'}; "
                f"failed checks: {', '.join(result['checks_failed']) or 'none'}"
            )
    day_rows = full["rows"]
    say("")
    say(TABLE.format("step", "wall", "rows", "rows/s", "peak RSS", "process"))
    say(_line("(b) floor: DuckDB reads the files", floor))
    say(_line("(a) full run: bronze+silver+checks", full, day_rows))
    say(_line("(c) no-change re-run (day's rows)", noop, day_rows))
    say(_line("(d) 1% correction (correction rows)", delta, delta_files["rows"]))
    say(_line("(e) publish the day to the lake", publish))
    say(_line("(f) no-change publish", noop_publish, publish["rows"]))
    if backfill:
        say(_line(f"(g) backfill of {args.days} days in one run", backfill))
    say("wall: the run (or the reads) timed inside its process; process: the child process from start to exit")
    say(f"checks evaluated: full {full['checks']}, noop {noop['checks']}, delta {delta['checks']}")
    ratio_vs_floor = full["seconds"] / floor["seconds"]
    noop_ratio = noop["seconds"] / full["seconds"]
    delta_ratio = delta["seconds"] / full["seconds"]
    peak = max(full["peak_rss_gb"], noop["peak_rss_gb"], delta["peak_rss_gb"])
    if backfill:
        per_day = backfill["seconds"] / args.days
        # The first day holds the warehouse's snapshots too: per row is the like-for-like comparison.
        per_row = (backfill["seconds"] / backfill["rows"]) / (full["seconds"] / day_rows)
        say(
            f"g/{args.days} = {per_day:.2f} s a day against a = {full['seconds']:.2f} s for the single day: "
            f"{per_day / full['seconds']:.3f}; per row read {per_row:.3f} (1.0 is linear); "
            f"peak RSS {backfill['peak_rss_gb']:.2f} GB against {full['peak_rss_gb']:.2f} GB for the single day"
        )
    say(
        f"a/b = {ratio_vs_floor:.2f} (target <= 3.0, ambition 2.0)   c/a = {noop_ratio:.4f} (<= 0.02)   "
        f"d/a = {delta_ratio:.4f} (<= 0.05)   peak RSS {peak:.2f} GB (<= 4)"
    )
    publish_ratio = publish["seconds"] / full["seconds"]
    publish_peak = max(publish["peak_rss_gb"], noop_publish["peak_rss_gb"])
    say(
        f"e/a = {publish_ratio:.3f} (target <= 0.25)   Delta commits: publish {publish['commits']}, "
        f"no-change publish {noop_publish['commits']} (must be 0)   publish peak RSS {publish_peak:.2f} GB"
    )
    if not args.keep:
        for database in ("warehouse.duckdb", "floor.duckdb"):
            _remove_database(args.workdir / database)
        shutil.rmtree(args.workdir / "lake", ignore_errors=True)
    _remove_deltas(args)
    say(
        f"ratio_vs_floor={ratio_vs_floor:.3f} noop_ratio={noop_ratio:.4f} delta_ratio={delta_ratio:.4f} peak_rss_gb={peak:.2f} "
        f"publish_ratio={publish_ratio:.3f} noop_publish_commits={noop_publish['commits']} publish_peak_rss_gb={publish_peak:.2f}"
        + (
            f" days={args.days} per_day_seconds={per_day:.3f} per_day_ratio={per_day / full['seconds']:.3f} "
            f"per_row_ratio={per_row:.3f} backfill_peak_rss_gb={backfill['peak_rss_gb']:.2f}"
            if backfill
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
