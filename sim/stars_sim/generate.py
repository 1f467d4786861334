"""stars-generate: write deterministic vendor feeds (and their ground truth) into the landing folder.

    stars-generate [--seed 7] [--members 100000] [--days 14] [--start-date 2026-10-01] [--out DIR]
                   [--outreach-rows-per-day N] [--fault-rate KIND=RATE ...] [--no-faults]

The same options always give the same bytes; see docs/vendor-formats.md for the files.
Invalid options print an error on stderr and exit with status 2. No member identifier is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from stars_assets import settings
from stars_sim.generator import DEFAULT_RATES, FAULT_KINDS, generate
from stars_sim.generator.run import validate_options


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from None


def _fault_rate(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE, got {text!r}")
    if kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"unknown fault kind {kind!r}; one of: {', '.join(FAULT_KINDS)}")
    try:
        value = float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate for {kind} is not a number: {rate!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"rate for {kind} must be between 0 and 1, got {rate}")
    return kind, value


def build_parser() -> argparse.ArgumentParser:
    rates = ", ".join(f"{k}={v:g}" for k, v in DEFAULT_RATES.items())
    parser = argparse.ArgumentParser(
        prog="stars-generate",
        description=__doc__.split("\n")[0],
        epilog=f"Fault kinds and default rates (row kinds: chance per row; file kinds: share of days): {rates}",
    )
    parser.add_argument("--seed", type=_positive_int, default=7, help="random seed (default 7)")
    parser.add_argument("--members", type=_positive_int, default=100_000, help="members in the world (default 100000)")
    parser.add_argument("--days", type=_positive_int, default=14, help="delivery days to write (default 14)")
    parser.add_argument("--start-date", type=_date, default=dt.date(2026, 10, 1), help="first delivery day (default 2026-10-01)")
    parser.add_argument("--out", default=None, help="landing folder (default: the project's landing folder)")
    parser.add_argument(
        "--outreach-rows-per-day",
        type=_positive_int,
        default=None,
        metavar="N",
        help="daily outreach rows across ihwa, engage and dialer (default: what the world produces)",
    )
    parser.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="override one fault kind's rate, repeatable; 0 disables the kind",
    )
    parser.add_argument("--no-faults", action="store_true", help="write clean files only")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_faults and args.fault_rate:
        parser.error("--no-faults and --fault-rate contradict each other; use one")
    try:
        validate_options(args.members, args.days, args.start_date, args.outreach_rows_per_day)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2
    out = args.out or str(settings.landing_dir())

    began = time.monotonic()  # for the elapsed time printed at the end only; never written to a file
    print(
        f"stars-generate: seed {args.seed}, {args.members} members, {args.days} days from {args.start_date.isoformat()} into {out}",
        flush=True,
    )
    summary = generate(
        out,
        seed=args.seed,
        members=args.members,
        days=args.days,
        start_date=args.start_date,
        outreach_rows_per_day=args.outreach_rows_per_day,
        fault_rates=dict(args.fault_rate),
        faults=not args.no_faults,
        progress=lambda message: print(message, flush=True),
    )
    print(f"\nwrote {summary.start_date.isoformat()} .. {summary.end_date.isoformat()} in {time.monotonic() - began:.1f} s")
    print(f"{'provider':<12}{'files':>8}{'rows':>14}")
    for provider, files in summary.files_by_provider.items():
        print(f"{provider:<12}{files:>8}{summary.rows_by_provider.get(provider, 0):>14,}")
    print("\nfaults injected:")
    for kind, count in summary.faults_by_kind.items():
        print(f"  {kind:<26}{count:>10,}")
    print(
        "\nexpected outcome of outreach events:", ", ".join(f"{k} {v:,}" for k, v in summary.outreach_events_by_expected.items())
    )
    print(
        "expected outcome of appointment events:",
        ", ".join(f"{k} {v:,}" for k, v in summary.appointment_events_by_expected.items()),
    )
    print(f"ground truth in {summary.out_dir / '_truth'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
