"""The member outreach API: documents, audiences and a change feed for marketing and care-management systems.

Every endpoint except /v1/health needs an API key (header X-API-Key) holding the endpoint's scope: 401
without a valid key, 403 without the scope. Every response that carries member data appends one row to
the audit table (key id, time, endpoint, member ids, count). The application log records the route
template, status, duration and key id of each request, never a member identifier; uvicorn's access log
(which prints request paths) is off.

Handlers are `async`; each request makes one store read in a worker thread (key records are cached for
KEY_CACHE_SECONDS, so a revoked key stops working within that time) and waits for its audit row, which a
background writer commits in groups.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from stars_assets.api.audit import AuditWriter
from stars_assets.lib.documents.keys import SCOPES, parse_key, secret_matches
from stars_assets.lib.documents.store import ApiKeyRecord, DocumentStore
from stars_assets.lib.silver.identity import IDENTIFIER_PATTERNS
from stars_assets.lib.vocabulary import CARE_GAP_MEASURES, CHANNELS

log = logging.getLogger("stars_assets.api")

MEMBER_ID = re.compile(IDENTIFIER_PATTERNS["member_id"])
MBI = re.compile(IDENTIFIER_PATTERNS["mbi"])
MALFORMED_MEMBER_REF = (
    "malformed member identifier: give a member id (M followed by 9 digits) or an MBI "
    "(11 characters in CMS's format, e.g. 1EG4TE5MK73)"
)
DEFAULT_PAGE, MAX_PAGE = 100, 1000
KEY_CACHE_SECONDS = 2.0
Channel = Literal[CHANNELS]
Measure = Literal[tuple(CARE_GAP_MEASURES)]

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `stars-api-keys create`; its scopes decide the endpoints it may call.",
)


def _store(request: Request) -> DocumentStore:
    return request.app.state.store


class KeyCache:
    """Key records for KEY_CACHE_SECONDS: most requests skip the key lookup, and a revocation takes effect within
    that time in every API process."""

    def __init__(self, store: DocumentStore):
        self.store = store
        self._records: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        cached = self._records.get(key_id)
        if cached is None or cached[0] < now:
            cached = (now + KEY_CACHE_SECONDS, await run_in_threadpool(self.store.key, key_id))
            if len(self._records) > 10_000:  # unknown ids must not grow the cache without bound
                self._records.clear()
            self._records[key_id] = cached
        return cached[1]


def require_scope(scope: str) -> Callable[..., ApiKeyRecord]:
    async def authorize(request: Request, api_key: Annotated[str | None, Depends(api_key_header)]) -> ApiKeyRecord:
        parsed = parse_key(api_key) if api_key else None
        record = await request.app.state.keys.get(parsed[0]) if parsed else None
        if record is None or record.revoked_at is not None or not secret_matches(record.salt, record.secret_hash, parsed[1]):
            raise HTTPException(
                401, "a valid API key is required in the X-API-Key header", headers={"WWW-Authenticate": "ApiKey"}
            )
        request.state.key_id = record.key_id
        if scope not in record.scopes:
            raise HTTPException(403, f"this API key lacks the scope {scope}")
        return record

    return authorize


def _encode_cursor(member_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": member_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        after = None
    if not isinstance(after, str) or not MEMBER_ID.match(after):
        raise HTTPException(422, "malformed cursor: pass back the next_cursor of the previous page unchanged")
    return after


def _epoch_text(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# What a listed member or change carries as stored; the endpoints add what they derive.
AUDIENCE_FIELDS = ("member_id", "contract_id", "region", "open_gap_measures")
CHANGE_FIELDS = ("seq", "member_id", "updated_at")


async def _audited_items(
    request: Request, key: ApiKeyRecord, route: str, rows: list, fields: tuple[str, ...], **derived: Callable[[Any], Any]
) -> list[dict]:
    """The rows as the items a response lists (the named fields, then the derived ones), once the audit
    log holds which members the key is shown."""
    await request.app.state.audit.record(key.key_id, route, [r["member_id"] for r in rows])
    return [{**{field: r[field] for field in fields}, **{name: derive(r) for name, derive in derived.items()}} for r in rows]


class RequestLog:
    """Logs each request's method, route template (/v1/members/{member_ref}, never the path itself: paths carry
    member ids), status, duration and key id. Plain ASGI, so it adds no task per request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [0]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "(no route)")
            key_id = scope.get("state", {}).get("key_id", "-")
            log.info("%s %s %s %.1fms key=%s", scope["method"], route, status[0], (time.perf_counter() - started) * 1000, key_id)


def create_app(store: DocumentStore | None = None) -> FastAPI:
    store = store or DocumentStore()
    store.create_schema()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.audit = AuditWriter(store)
        yield
        app.state.audit.close()
        store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Stars member outreach API",
        version="1",
        description="Member outreach documents, audiences to contact next and a change feed, from the Star Ratings warehouse. "
        "Scopes: " + "; ".join(f"`{name}` ({text})" for name, text in SCOPES.items()) + ".",
    )
    app.state.store = store
    app.state.keys = KeyCache(store)

    app.add_middleware(RequestLog)

    @app.get("/v1/health", summary="Liveness and the store's size; no key needed")
    async def health(request: Request) -> dict:
        return {"status": "ok", **await run_in_threadpool(_store(request).summary)}

    @app.get(
        "/v1/members/{member_ref}",
        summary="One member's outreach document, by member id or MBI",
        responses={
            200: {"description": "The member's document (JSON)"},
            404: {"description": "No such member"},
            422: {"description": "Malformed identifier"},
        },
    )
    async def member(
        request: Request,
        key: Annotated[ApiKeyRecord, Depends(require_scope("members:read"))],
        member_ref: Annotated[str, Path(description="member id (M + 9 digits) or MBI", max_length=32)],
    ) -> Response:
        ref = member_ref.strip().upper()
        if MEMBER_ID.match(ref):
            found = await run_in_threadpool(_store(request).document, member_id=ref)
        elif MBI.match(ref):
            found = await run_in_threadpool(_store(request).document, mbi=ref)
        else:
            raise HTTPException(422, MALFORMED_MEMBER_REF)
        if found is None:
            raise HTTPException(404, "no document for this member")
        member_id, document = found
        await request.app.state.audit.record(key.key_id, "/v1/members/{member_ref}", [member_id])
        return Response(content=document, media_type="application/json")

    @app.get("/v1/audiences", summary="Members to contact next on a channel, cursor-paginated")
    async def audiences(
        request: Request,
        key: Annotated[ApiKeyRecord, Depends(require_scope("audiences:read"))],
        channel: Annotated[Channel, Query(description="the channel to contact on; members opted out of it never appear")],
        measure: Annotated[Measure | None, Query(description="only members with an open gap of this measure")] = None,
        contract: Annotated[str | None, Query(description="CMS contract number", pattern=r"^[A-Z][0-9]{4}$")] = None,
        region: Annotated[str | None, Query(description="region", pattern=r"^[A-Z_]{1,32}$")] = None,
        not_touched_days: Annotated[
            int,
            Query(ge=0, le=3650, description=("leave out members touched on any channel within this many days before `as_of`")),
        ] = 14,
        as_of: Annotated[date | None, Query(description="the day the audience is for (default: today, UTC)")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page", max_length=200)] = None,
    ) -> dict:
        day = as_of or datetime.now(UTC).date()
        cutoff = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=not_touched_days)
        rows = await run_in_threadpool(
            _store(request).audience,
            channel=channel,
            measure_code=measure,
            contract_id=contract,
            region=region,
            touched_before_epoch=int(cutoff.timestamp()),
            after=_decode_cursor(cursor) if cursor else "",
            limit=limit + 1,
        )
        page = rows[:limit]
        return {
            "members": await _audited_items(
                request, key, "/v1/audiences", page, AUDIENCE_FIELDS, last_touch_at=lambda r: _epoch_text(r["last_touch_epoch"])
            ),
            "next_cursor": _encode_cursor(page[-1]["member_id"]) if len(rows) > limit else None,
            "not_touched_since": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @app.get("/v1/changes", summary="Documents changed since a cursor, oldest first")
    async def changes(
        request: Request,
        key: Annotated[ApiKeyRecord, Depends(require_scope("changes:read"))],
        since: Annotated[
            str, Query(description="next_cursor of the previous call; 0 for everything", pattern=r"^[0-9]{1,18}$")
        ] = "0",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> dict:
        rows = await run_in_threadpool(_store(request).changes, int(since), limit)
        return {
            "changes": await _audited_items(
                request, key, "/v1/changes", rows, CHANGE_FIELDS, document=lambda r: json.loads(r["document"])
            ),
            "next_cursor": str(rows[-1]["seq"]) if rows else since,
        }

    return app
