"""stars-lake: list, inspect, time-travel and query the lake's Delta tables (never the pipeline's warehouse).

    stars-lake tables                                   every table with its version, rows and PHI flag
    stars-lake history gold.campaign_effectiveness      version, time, operation, partitions, rows
    stars-lake read gold.campaign_effectiveness --as-of 2026-11-01      (or --version 3)
    stars-lake sql "SELECT channel, sum(attempts) FROM gold.campaign_effectiveness GROUP BY 1" [--as-of ...]
    stars-lake vacuum gold.campaign_effectiveness --older-than 30       (explicit; nothing is vacuumed otherwise)

Tables are named <layer>.<table>; `sql` registers every lake table as a DuckDB view of that name in an
in-memory database, read as of --as-of when given (tables created later are left out, with a note).
A date given to --as-of means the end of that day (UTC). Add --csv or --json to any listing.
Unknown tables, versions before a table existed and invalid SQL print an error and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from decimal import Decimal

import duckdb
import pyarrow as pa
from tabulate import tabulate

from stars_assets.lib import lake

log = logging.getLogger("stars-lake")


def _name(text: str) -> tuple[str, str]:
    layer, _, table = text.partition(".")
    if not table:
        raise argparse.ArgumentTypeError(f"{text!r}: name a table as <layer>.<table>, e.g. gold.campaign_effectiveness")
    return layer, table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stars-lake",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    parser.add_argument("--root", help="lake root (default: STARS_LAKE_URI, else <STARS_DATA_DIR>/lake)")
    output = argparse.ArgumentParser(add_help=False)
    formats = output.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="CSV on stdout")
    formats.add_argument("--json", action="store_true", help="JSON records on stdout")
    as_of = argparse.ArgumentParser(add_help=False)
    as_of.add_argument("--as-of", metavar="TIMESTAMP", help="read as of a date (end of day, UTC) or an ISO timestamp")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tables", parents=[output], help="list tables with their versions")
    history = commands.add_parser("history", parents=[output], help="a table's commits, newest first")
    history.add_argument("table", type=_name)
    read = commands.add_parser("read", parents=[output, as_of], help="a table's rows, now or as of a version or time")
    read.add_argument("table", type=_name)
    read.add_argument("--version", type=int)
    read.add_argument("--limit", type=int, help="at most this many rows")
    sql = commands.add_parser("sql", parents=[output, as_of], help="run SQL over every lake table (views <layer>.<table>)")
    sql.add_argument("query")
    vacuum = commands.add_parser("vacuum", help="delete data files of versions older than a given age (logged)")
    vacuum.add_argument("table", type=_name, nargs="?", help="one table (default: every table)")
    vacuum.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    vacuum.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    return parser


def _json_value(value):
    """Dates and times as ISO text; DuckDB's HUGEINT sums (Arrow decimals) as numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _print(table: pa.Table, args: argparse.Namespace) -> None:
    rows = table.to_pylist()
    if args.json:
        print(json.dumps(rows, indent=1, default=_json_value))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        writer.writerows([row[c] for c in table.column_names] for row in rows)
    else:
        print(tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True) if rows else "(no rows)")


def _tables(args) -> pa.Table:
    infos = [lake.describe_table(layer, table, args.root) for layer, table in lake.list_tables(args.root)]
    return pa.Table.from_pylist(
        [
            {
                "table": f"{i.layer}.{i.table}",
                "version": i.version,
                "updated_at": i.updated_at.isoformat(timespec="seconds"),
                "rows": i.rows,
                "partitioned_by": ", ".join(i.partition_columns),
                "contains_phi": i.contains_phi,
                "uri": i.uri,
            }
            for i in infos
        ]
    )


def _history(args) -> pa.Table:
    entries = lake.history(*args.table, root=args.root)
    return pa.Table.from_pylist(
        [
            {
                "version": e["version"],
                "time": e["timestamp"].isoformat(timespec="seconds"),
                "operation": e["operation"],
                "mode": e["mode"],
                "partitions": ", ".join(e["partitions"]) if e["partitions"] is not None else "",
                "rows_written": e["rows"],
            }
            for e in entries
        ]
    )


def register_views(con: duckdb.DuckDBPyConnection, root: str | None, as_of: str | None) -> list[str]:
    """Every lake table as the view <layer>.<table>; returns the tables left out because they did not exist at `as_of`."""
    missing = []
    for layer, table in lake.list_tables(root):
        try:
            data = lake.dataset(layer, table, as_of=as_of, root=root)
        except lake.UnknownVersionError:
            missing.append(f"{layer}.{table}")
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        con.register(f"lake__{layer}__{table}", data)
        con.execute(f'CREATE VIEW "{layer}"."{table}" AS SELECT * FROM "lake__{layer}__{table}"')
    return missing


def _sql(args) -> pa.Table:
    with duckdb.connect() as con:
        missing = register_views(con, args.root, args.as_of)
        if missing:
            print(f"note: not in the lake at {args.as_of}: {', '.join(missing)}", file=sys.stderr)
        try:
            return con.sql(args.query).to_arrow_table()
        except duckdb.Error as error:
            raise lake.LakeError(f"query failed: {error}") from None


def _vacuum(args) -> None:
    targets = [args.table] if args.table else lake.list_tables(args.root)
    for layer, table in targets:
        removed = lake.vacuum(layer, table, older_than_days=args.older_than, dry_run=args.dry_run, root=args.root)
        print(f"{layer}.{table}: {len(removed)} files {'would be deleted' if args.dry_run else 'deleted'}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "tables":
            _print(_tables(args), args)
        elif args.command == "history":
            _print(_history(args), args)
        elif args.command == "read":
            table = lake.read_table(*args.table, version=args.version, as_of=args.as_of, root=args.root)
            _print(table.slice(0, args.limit) if args.limit is not None else table, args)
        elif args.command == "sql":
            _print(_sql(args), args)
        elif args.command == "vacuum":
            _vacuum(args)
    except lake.LakeError as error:
        print(f"stars-lake: {error}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
