"""stars-api-keys: create, list and revoke API keys in the document store.

    stars-api-keys create --scopes members:read audiences:read [--label crm]   prints the key once
    stars-api-keys list
    stars-api-keys revoke KEY_ID

The store is STARS_DOCUMENT_STORE_URL (default data/documents.sqlite) or --store-url.
"""

from __future__ import annotations

import argparse
import sys

from stars_assets.lib.documents.keys import SCOPES, new_key, unknown_scopes
from stars_assets.lib.documents.store import DocumentStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stars-api-keys", description="Create, list and revoke API keys of the member outreach API."
    )
    parser.add_argument(
        "--store-url", default=None, help="document store URL (default: STARS_DOCUMENT_STORE_URL, else data/documents.sqlite)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key; it is printed once and only its hash is stored")
    create.add_argument("--scopes", nargs="+", required=True, help=f"one or more of: {', '.join(SCOPES)}")
    create.add_argument("--label", default=None, help="who or what uses the key")
    commands.add_parser("list", help="list keys (ids, scopes, created, revoked); never secrets")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    store = DocumentStore(args.store_url)
    try:
        store.create_schema()
        if args.command == "create":
            scopes = [s for part in args.scopes for s in part.split(",") if s]
            if unknown := unknown_scopes(scopes):
                parser.error(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
            key = new_key()
            store.add_key(key.key_id, key.salt, key.secret_hash, scopes, args.label)
            print(f"key id: {key.key_id}\nscopes: {' '.join(sorted(set(scopes)))}\napi key (shown once): {key.api_key}")
        elif args.command == "list":
            for record in store.keys():
                state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
                print(
                    f"{record.key_id}  {' '.join(sorted(record.scopes)):<45} {record.label or '-':<20} created {record.created_at}  {state}"
                )
        elif args.command == "revoke":
            if not store.revoke_key(args.key_id):
                print(f"no active key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
