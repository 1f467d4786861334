"""make bench-api: member documents and the outreach API at 100,000 members, on SQLite and PostgreSQL.

    python -m stars_sim.bench_api [--members 100000] [--days 3] [--seconds 20] [--clients 8] [--workdir DIR] [--keep]

Generates a world of `--members` members (clean files, the generator's natural outreach volume), ingests
all days but the last into bronze and silver, then for each store (an SQLite file; a throwaway
PostgreSQL server with its default durability):

  full         a Dagster run of activation/member_documents rebuilding every member's document
  incremental  after the last day is ingested, a run for that day only (members changed that day)
  GET          uvicorn serving the API (one process) and `--clients` client processes, each with one
               keep-alive connection, requesting /v1/members/{id} of random members for `--seconds`:
               latency p50/p95/p99 and requests a second over loopback (each request is authorized,
               read and audited)

Build times are the wall time of the Dagster run (dg.materialize) around the asset, on one (ephemeral)
Dagster instance shared by the bench's runs. The figures are
printed, not asserted; the README carries one run's. Targets: p95 <= 20 ms, >= 500 requests/s,
incremental <= 10% of full, full build of 100,000 <= 60 s. The machine's load average is printed with
the figures: on a shared machine they follow the other work more than the code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import duckdb

from stars_sim import generate
from stars_sim.postgres import free_port, throwaway_postgres

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _ingest(landing: Path, warehouse: Path, first: dt.date, last: dt.date) -> float:
    from stars_assets.defs.bronze.assets import bronze_assets
    from stars_assets.defs.resources import build_resources
    from stars_assets.defs.silver import assets as silver

    assets = [
        *bronze_assets,
        silver.members,
        silver.care_gaps,
        silver.rx_fills,
        silver.outreach_events,
        silver.appointments,
        silver.quarantine,
    ]
    started = time.perf_counter()
    result = dg.materialize(
        assets,
        resources=build_resources(warehouse=str(warehouse), landing=str(landing)),
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
    )
    assert result.success
    return time.perf_counter() - started


def _build(
    instance: dg.DagsterInstance, landing: Path, warehouse: Path, url: str, run_config: dict | None = None, **partitions
) -> tuple[float, dict]:
    from stars_assets.defs.activation.assets import MEMBER_DOCUMENTS, member_documents
    from stars_assets.defs.resources import build_resources

    resources = build_resources(warehouse=str(warehouse), landing=str(landing), documents=url)
    started = time.perf_counter()
    result = dg.materialize([member_documents], resources=resources, run_config=run_config, instance=instance, **partitions)
    elapsed = time.perf_counter() - started
    assert result.success
    metadata = result.asset_materializations_for_node(MEMBER_DOCUMENTS.to_python_identifier())[-1].metadata
    return elapsed, {k: v.value for k, v in metadata.items()}


def _client(args: tuple[int, str, list[str], float]) -> tuple[list[float], int]:
    """One client: a keep-alive connection requesting random members until the deadline."""
    port, key, members, deadline = args
    rng = random.Random(os.getpid())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors = [], 0
    while time.time() < deadline:
        started = time.perf_counter()
        connection.request("GET", f"/v1/members/{rng.choice(members)}", headers={"X-API-Key": key})
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status != 200
    connection.close()
    return latencies, errors


def _serve_and_load(url: str, members: list[str], clients: int, seconds: float, log_path: Path) -> dict:
    from stars_assets.lib.documents.keys import new_key
    from stars_assets.lib.documents.store import DocumentStore

    store = DocumentStore(url)
    key = new_key()
    store.add_key(key.key_id, key.salt, key.secret_hash, ["members:read"], "bench")
    store.close()
    port = free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "stars_assets.api", "--port", str(port), "--store-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(300):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/v1/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        # Warm-up, then the measured window.
        pool = multiprocessing.get_context("fork").Pool(clients)
        try:
            pool.map(_client, [(port, key.api_key, members, time.time() + 2)] * clients)
            load = os.getloadavg()[0]  # the machine is shared: the figures mean little without it
            started = time.time()
            results = pool.map(_client, [(port, key.api_key, members, started + seconds)] * clients)
            elapsed = time.time() - started
        finally:
            pool.close()
            pool.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = sorted(x for lat, _ in results for x in lat)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "errors": sum(e for _, e in results),
        "p50_ms": quantiles[49] * 1000,
        "p95_ms": quantiles[94] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "req_per_s": len(latencies) / elapsed,
        "load_before": load,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stars_sim.bench_api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3, help="delivery days; the last is the incremental day")
    parser.add_argument("--start-date", default="2026-10-01")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured GET window per store")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="stars-bench-api-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DAGSTER_HOME", str(workdir / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    landing, warehouse = workdir / "landing", workdir / "warehouse.duckdb"
    first = dt.date.fromisoformat(args.start_date)
    last = first + dt.timedelta(days=args.days - 1)
    try:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        started = time.perf_counter()
        generate.main(
            [
                "--seed",
                str(args.seed),
                "--members",
                str(args.members),
                "--days",
                str(args.days),
                "--start-date",
                first.isoformat(),
                "--out",
                str(landing),
                "--no-faults",
            ]
        )
        print(f"generated {args.members:,} members, {args.days} days in {time.perf_counter() - started:.1f} s", flush=True)
        print(
            f"ingested {first}..{last - dt.timedelta(days=1)} in {_ingest(landing, warehouse, first, last - dt.timedelta(days=1)):.1f} s",
            flush=True,
        )
        figures: dict[str, dict] = {}
        # One instance for every build, as a deployment has: a run pays for its own events, not for setting up run
        # storage (dg.materialize without an instance creates an ephemeral one per call, about 0.15 s here).
        instance = dg.DagsterInstance.ephemeral()
        with ExitStack() as stack:
            urls = {
                "sqlite": f"sqlite:///{workdir / 'documents.sqlite'}",
                "postgresql": stack.enter_context(throwaway_postgres(durable=True)),
            }
            for name, url in urls.items():
                seconds, metadata = _build(
                    instance,
                    landing,
                    warehouse,
                    url,
                    {"ops": {"activation__member_documents": {"config": {"rebuild_all": True}}}},
                    tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: (last - dt.timedelta(days=1)).isoformat()},
                )
                figures[name] = {
                    "full_s": seconds,
                    "full_asset_s": metadata["build_seconds"],
                    "full_written": metadata["documents_written"],
                }
                print(
                    f"[{name}] full build: {metadata['documents_written']:,} documents in {seconds:.2f} s "
                    f"(the asset's own work {metadata['build_seconds']:.2f} s: assembling {metadata['assemble_seconds']:.2f} s, "
                    f"writing {metadata['write_seconds']:.2f} s)",
                    flush=True,
                )
            print(f"ingested {last} in {_ingest(landing, warehouse, last, last):.1f} s", flush=True)
            for name, url in urls.items():
                seconds, metadata = _build(instance, landing, warehouse, url, partition_key=last.isoformat())
                figures[name] |= {
                    "incremental_s": seconds,
                    "incremental_asset_s": metadata["build_seconds"],
                    "incremental_rebuilt": metadata["documents_rebuilt"],
                    "incremental_written": metadata["documents_written"],
                }
                print(
                    f"[{name}] incremental build after {last}: {metadata['documents_rebuilt']:,} rebuilt, "
                    f"{metadata['documents_written']:,} written in {seconds:.2f} s (the asset's own work "
                    f"{metadata['build_seconds']:.2f} s: assembling {metadata['assemble_seconds']:.2f} s, "
                    f"writing {metadata['write_seconds']:.2f} s)",
                    flush=True,
                )
            with duckdb.connect(str(warehouse), read_only=True) as con:
                members = [r[0] for r in con.execute("SELECT member_id FROM silver.members USING SAMPLE 5000 ROWS").fetchall()]
            for name, url in urls.items():
                figures[name] |= _serve_and_load(url, members, args.clients, args.seconds, workdir / f"api-{name}.log")
                f = figures[name]
                print(
                    f"[{name}] GET /v1/members/{{id}}, {args.clients} clients, {args.seconds:.0f} s: {f['requests']:,} requests, "
                    f"{f['errors']} errors, p50 {f['p50_ms']:.1f} ms, p95 {f['p95_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
                    f"{f['req_per_s']:.0f} req/s (1-minute load average before: {f['load_before']:.2f})",
                    flush=True,
                )
        print()
        print(
            "Build times: 'run' is the whole Dagster run (dg.materialize: what its caller waits for; the target "
            "incremental/full <= 10% applies to it), 'asset' the asset's own work (its build_seconds metadata)."
        )
        print(
            "| store | full: run | asset | incremental (1 day): run | asset | incr/full: run | asset | GET p50 | p95 | p99 | req/s | load |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, f in figures.items():
            print(
                f"| {name} | {f['full_s']:.2f} s | {f['full_asset_s']:.2f} s ({f['full_written']:,} docs) | "
                f"{f['incremental_s']:.2f} s | {f['incremental_asset_s']:.2f} s ({f['incremental_written']:,} docs) | "
                f"{f['incremental_s'] / f['full_s']:.1%} | {f['incremental_asset_s'] / f['full_asset_s']:.1%} | "
                f"{f['p50_ms']:.1f} ms | {f['p95_ms']:.1f} ms | {f['p99_ms']:.1f} ms | {f['req_per_s']:.0f} | {f['load_before']:.2f} |"
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
