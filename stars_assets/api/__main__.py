"""Serve the API with uvicorn: python -m stars_assets.api [--host 127.0.0.1] [--port 8000] [--store-url URL]."""

import argparse
import logging

import uvicorn

from stars_assets.api.app import create_app
from stars_assets.lib.documents.store import DocumentStore


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stars_assets.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--store-url", default=None, help="document store URL (default: STARS_DOCUMENT_STORE_URL, else data/documents.sqlite)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # access_log off: uvicorn's access log prints request paths, and paths carry member ids.
    uvicorn.run(create_app(DocumentStore(args.store_url)), host=args.host, port=args.port, access_log=False, log_level="info")


if __name__ == "__main__":
    main()
