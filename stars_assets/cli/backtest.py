"""stars-backtest: print every back-test over CMS's published 2023-2026 tables.

    stars-backtest [--markdown] [--draws N]

Reproduction of each year's overall ratings, the cut-point engine against each year's published cut points and
measure stars (and the CAHPS measures' percentile shift and significance test step by step), the cut-point
forecast one and two years ahead against carrying cut points forward, and the year-ahead rating projection on
the held-out pair 2025 -> 2026 against persistence. Takes a few minutes.
"""

from __future__ import annotations

import argparse

import pandas as pd

from stars_assets.lib.cms.outlook_backtest import run_backtests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stars-backtest", description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws for the gain's interval (default 1000)")
    args = parser.parse_args(argv)
    report = run_backtests(bootstrap_draws=args.draws)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for title, table in report.tables().items():
            print(f"\n## {title}\n")
            print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))
        print("\nYear-ahead model coefficients and cut points:")
        print(report.year_ahead_params.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
