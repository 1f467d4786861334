"""`python -m stars_assets.dashboard [--port N]`: the one command that serves the dashboard (`make dashboard` runs it).

Loopback only, headless (no browser opened), no usage statistics sent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamlit.web import cli

APP = Path(__file__).resolve().parent / "app.py"
DEFAULT_PORT = 8501


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stars_assets.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args(argv)
    sys.argv = [
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
