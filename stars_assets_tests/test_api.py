"""The member outreach API through real HTTP (uvicorn in a subprocess on a free loopback port), on SQLite and on
PostgreSQL: documents equal silver and gold, keys and scopes, the audit trail, opt-outs, the change feed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
from stars_sim.postgres import free_port

from stars_assets.api.app import KEY_CACHE_SECONDS
from stars_assets.cli import api_keys
from stars_assets.defs.activation.assets import MEMBER_DOCUMENTS, member_documents
from stars_assets.defs.cms import assets as cms_assets
from stars_assets.defs.gold.assets import care_gap_closure, contract_measure_rates
from stars_assets.defs.model.predictions import measure_levers_asset
from stars_assets.defs.resources import build_resources
from stars_assets.lib.documents.store import DocumentStore
from stars_assets_tests.conftest import WORLD_DAYS, WORLD_START, ingest, query

NEW_DAY = WORLD_START + timedelta(days=WORLD_DAYS - 1)  # delivered after the first document build
GOLD_WEEK = "2026-10-25"  # the week (Sunday..Saturday 31 October) of gold's closures and the measure levers
STORES = ["sqlite", "postgresql"]


@dataclass
class StoreState:
    url: str
    cursor_before_new_day: int
    new_day_written: int


@dataclass
class ApiWorld:
    warehouse: Path
    landing: Path
    stores: dict[str, StoreState]


def _build_documents(warehouse: Path, landing: Path, url: str, **partitions) -> dg.ExecuteInProcessResult:
    resources = build_resources(warehouse=str(warehouse), landing=str(landing), documents=url)
    result = dg.materialize([member_documents], resources=resources, **partitions)
    assert result.success
    return result


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    # A range run reports one materialization per partition, each with the run's figures.
    materialization = result.asset_materializations_for_node(MEMBER_DOCUMENTS.to_python_identifier())[-1]
    return {k: v.value for k, v in materialization.metadata.items()}


@pytest.fixture(scope="module")
def api_world(world, postgres_url, tmp_path_factory) -> ApiWorld:
    """The first nine days ingested, gold closures and measure levers built for a week, documents built into both
    stores; then the last day ingested and the documents rebuilt for that day only."""
    warehouse = tmp_path_factory.mktemp("api") / "warehouse.duckdb"
    assert ingest(world, warehouse, WORLD_START, NEW_DAY - timedelta(days=1)).success
    resources = build_resources(warehouse=str(warehouse), landing=str(world))
    # The weekly gold rates the plan under the forecast cut points, which are built from every CMS table.
    cms_tables = [
        cms_assets.measure_scores,
        cms_assets.measure_stars,
        cms_assets.summary_ratings,
        cms_assets.cai,
        cms_assets.cut_points,
        cms_assets.projection_cut_points,
    ]
    assert dg.materialize(cms_tables, resources=resources).success
    assert dg.materialize([care_gap_closure, contract_measure_rates], resources=resources, partition_key=GOLD_WEEK).success
    assert dg.materialize([measure_levers_asset], resources=resources, partition_key=GOLD_WEEK).success
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('store') / 'documents.sqlite'}", "postgresql": postgres_url}
    cursors = {}
    for name, url in urls.items():
        first = _metadata(
            _build_documents(
                warehouse,
                world,
                url,
                tags={
                    "dagster/asset_partition_range_start": WORLD_START.isoformat(),
                    "dagster/asset_partition_range_end": (NEW_DAY - timedelta(days=1)).isoformat(),
                },
            )
        )
        assert first["mode"] == "full" and first["documents_written"] == first["documents_in_store"] > 1000
        cursors[name] = first["last_change_seq"]
    assert ingest(world, warehouse, NEW_DAY, NEW_DAY).success
    stores = {}
    for name, url in urls.items():
        second = _metadata(_build_documents(warehouse, world, url, partition_key=NEW_DAY.isoformat()))
        assert second["mode"] == "incremental" and second["documents_rebuilt"] < second["documents_in_store"] / 5
        stores[name] = StoreState(url, cursors[name], second["documents_written"])
    return ApiWorld(warehouse, world, stores)


@dataclass
class Server:
    name: str
    url: str
    base_url: str
    store: DocumentStore
    log_path: Path

    def get(self, path: str, key: str | None = None, **params) -> httpx.Response:
        headers = {"X-API-Key": key} if key else {}
        return httpx.get(self.base_url + path, headers=headers, params=params, timeout=30)


def _create_key(url: str, *scopes: str, capsys) -> str:
    assert api_keys.main(["--store-url", url, "create", "--scopes", *scopes, "--label", "test"]) == 0
    printed = capsys.readouterr().out
    return next(line.split()[-1] for line in printed.splitlines() if line.startswith("api key"))


@pytest.fixture(scope="module", params=STORES)
def server(request, api_world, tmp_path_factory):
    url = api_world.stores[request.param].url
    log_path = tmp_path_factory.mktemp("api-log") / "api.log"
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stars_assets.api", "--port", str(port), "--store-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base_url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.3)
        store = DocumentStore(url)
        yield Server(request.param, url, base_url, store, log_path)
        store.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def full_key(server, capsys) -> str:
    return _create_key(server.url, "members:read", "audiences:read", "changes:read", capsys=capsys)


def _sample_members(warehouse: Path, n: int = 25) -> list[str]:
    """Every k-th member (by id) with at least one care gap and one touch: deterministic and spread out."""
    ids = query(
        warehouse,
        """
        SELECT member_id FROM silver.members
        WHERE member_id IN (SELECT member_id FROM silver.care_gaps) AND member_id IN (SELECT member_id FROM silver.outreach_events)
        ORDER BY member_id""",
    )["member_id"].tolist()
    return ids[:: max(1, len(ids) // n)][:n]


def _ts(value) -> str | None:
    return None if value is None or value != value else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_documents_equal_silver_and_gold(server, api_world, full_key):
    wh = api_world.warehouse
    gold_week = query(wh, "SELECT max(as_of_week_end) AS w FROM gold.care_gap_closure")["w"][0]
    attributed = (
        query(wh, "SELECT gap_id, attributed_channel FROM gold.care_gap_closure WHERE as_of_week_end = $w", {"w": gold_week})
        .set_index("gap_id")["attributed_channel"]
        .to_dict()
    )
    assert any(v is not None for v in attributed.values())
    levers = query(wh, "SELECT contract_id, measure_id, lever_rank FROM model.measure_levers")
    lever_rank = {(r.contract_id, r.measure_id): r.lever_rank for r in levers.itertuples()}
    checked_attributions = checked_priorities = 0
    for member_id in _sample_members(wh):
        response = server.get(f"/v1/members/{member_id}", full_key)
        assert response.status_code == 200
        doc = response.json()
        member = query(wh, "SELECT * FROM silver.members WHERE member_id = $m", {"m": member_id}).iloc[0]
        assert (doc["member_id"], doc["mbi"], doc["contract_id"], doc["region"]) == (
            member_id,
            member.mbi,
            member.contract_id,
            member.region,
        )
        assert doc["cohort"] == {
            "dual": bool(member.dual_status),
            "lis": bool(member.lis_status),
            "diabetes": bool(member.has_diabetes),
            "hypertension": bool(member.has_hypertension),
            "hyperlipidemia": bool(member.has_hyperlipidemia),
        }
        by_mbi = server.get(f"/v1/members/{member.mbi}", full_key)
        assert by_mbi.status_code == 200 and by_mbi.json() == doc

        gaps = query(
            wh,
            "SELECT gap_id, measure_code, gap_status, open_date, close_date FROM silver.care_gaps WHERE member_id = $m",
            {"m": member_id},
        )
        assert {g["gap_id"] for g in doc["open_gaps"]} == set(gaps.loc[gaps.gap_status == "OPEN", "gap_id"])
        assert {g["gap_id"] for g in doc["closed_gaps"]} == set(gaps.loc[gaps.gap_status == "CLOSED", "gap_id"])
        for gap in doc["open_gaps"] + doc["closed_gaps"]:
            row = gaps.set_index("gap_id").loc[gap["gap_id"]]
            assert (gap["measure_code"], gap["opened"]) == (row.measure_code, row.open_date.date().isoformat())
            assert gap["attributed_channel"] == attributed.get(gap["gap_id"])
            checked_attributions += gap["attributed_channel"] is not None

        expected_priorities = sorted(
            (lever_rank[(member.contract_id, g.cms_measure_id)], g.measure_code)
            for g in query(
                wh,
                "SELECT DISTINCT measure_code, cms_measure_id FROM silver.care_gaps WHERE member_id = $m AND gap_status = 'OPEN'",
                {"m": member_id},
            ).itertuples()
            if (member.contract_id, g.cms_measure_id) in lever_rank
        )
        assert [(p["lever_rank"], p["measure_code"]) for p in doc["priority_measures"]] == expected_priorities
        checked_priorities += bool(expected_priorities)

        touches = query(
            wh,
            """
            SELECT channel, count(*) AS touches, max(event_ts) AS last_ts, arg_max(event_type, (event_ts, event_id)) AS outcome,
                   bool_or(event_type = 'OPTED_OUT') AS opted_out
            FROM silver.outreach_events WHERE member_id = $m GROUP BY 1 ORDER BY 1""",
            {"m": member_id},
        )
        assert [(t["channel"], t["touches"], t["last_touch_at"], t["outcome"]) for t in doc["last_touches"]] == [
            (r.channel, r.touches, _ts(r.last_ts), r.outcome) for r in touches.itertuples()
        ]
        assert [o["channel"] for o in doc["opt_outs"]] == touches.loc[touches.opted_out, "channel"].tolist()
        assert doc["last_touch_at"] == _ts(touches.last_ts.max())

        appointments = query(wh, "SELECT appointment_key, status FROM silver.appointments WHERE member_id = $m", {"m": member_id})
        upcoming = set(appointments.loc[appointments.status.isin(["BOOKED", "RESCHEDULED"]), "appointment_key"])
        assert {a["appointment_key"] for a in doc["appointments"]["upcoming"]} == upcoming
        assert {a["appointment_key"] for a in doc["appointments"]["past"]} == set(appointments.appointment_key) - upcoming
    assert checked_attributions > 0, "no sampled member had a closure gold attributes to a channel"
    assert checked_priorities > 0, "no sampled member had an open gap in a measure with a lever"


def test_keys_and_scopes_are_enforced(server, api_world, capsys):
    url = server.url
    member_id = _sample_members(api_world.warehouse, 1)[0]
    audiences_only = _create_key(url, "audiences:read", capsys=capsys)
    members_key = _create_key(url, "members:read", capsys=capsys)
    path = f"/v1/members/{member_id}"

    assert server.get(path).status_code == 401
    assert server.get(path, "not-a-key").status_code == 401
    assert server.get(path, members_key[:-4] + "AAAA").status_code == 401  # right id, wrong secret
    assert server.get(path, audiences_only).status_code == 403
    assert server.get("/v1/changes", members_key).status_code == 403
    assert server.get("/v1/audiences", audiences_only, channel="SMS").status_code == 200
    assert server.get(path, members_key).status_code == 200
    malformed = server.get("/v1/members/12345", members_key)
    assert malformed.status_code == 422 and "member id" in malformed.json()["detail"]
    assert server.get("/v1/members/M000000000", members_key).status_code == 404

    key_id = members_key.split("_")[1]
    assert api_keys.main(["--store-url", url, "list"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and members_key.split("_", 2)[2] not in listed  # the secret is never shown again
    assert api_keys.main(["--store-url", url, "revoke", key_id]) == 0
    time.sleep(KEY_CACHE_SECONDS + 0.5)  # the API holds key records this long
    assert server.get(path, members_key).status_code == 401


def test_audit_rows_written_and_logs_free_of_member_ids(server, api_world, capsys):
    url = server.url
    key = _create_key(url, "members:read", "audiences:read", "changes:read", capsys=capsys)
    key_id = key.split("_")[1]
    members = _sample_members(api_world.warehouse, 3)
    for member_id in members:
        assert server.get(f"/v1/members/{member_id}", key).status_code == 200
    assert server.get("/v1/members/M000000000", key).status_code == 404  # returns no member data: no audit row
    audience = server.get("/v1/audiences", key, channel="EMAIL", limit=7).json()["members"]
    changes = server.get("/v1/changes", key, since="0", limit=5).json()["changes"]

    trail = server.store.audit_trail(key_id)
    assert [(row["endpoint"], row["member_ids"], row["result_count"]) for row in trail] == [
        *[("/v1/members/{member_ref}", [m], 1) for m in members],
        ("/v1/audiences", [m["member_id"] for m in audience], len(audience)),
        ("/v1/changes", [c["member_id"] for c in changes], len(changes)),
    ]
    log = server.log_path.read_text()
    assert "GET /v1/members/{member_ref} 200" in log
    mbis = query(api_world.warehouse, "SELECT mbi FROM silver.members WHERE member_id IN (SELECT unnest($m))", {"m": members})[
        "mbi"
    ]
    for identifier in [*members, *mbis, *(m["member_id"] for m in audience)]:
        assert identifier not in log


def _audience(server: Server, key: str, **params) -> list[dict]:
    members, cursor = [], None
    while True:
        page = server.get("/v1/audiences", key, limit=50, **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        members += page.json()["members"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return members


@pytest.mark.parametrize("channel,measure,days", [("LIVE_CALL", None, 3), ("SMS", "BCS", 0), ("EMAIL", "COL", 7)])
def test_audiences_honour_opt_outs_and_recent_touches(server, api_world, full_key, channel, measure, days):
    as_of = NEW_DAY + timedelta(days=1)
    cutoff = datetime(as_of.year, as_of.month, as_of.day) - timedelta(days=days)
    expected = query(
        api_world.warehouse,
        """
        WITH last_touch AS (SELECT member_id, max(event_ts) AS ts FROM silver.outreach_events GROUP BY 1),
        opted_out AS (SELECT DISTINCT member_id FROM silver.outreach_events WHERE channel = $channel AND event_type = 'OPTED_OUT')
        SELECT DISTINCT m.member_id
        FROM silver.members AS m JOIN silver.care_gaps AS g USING (member_id) LEFT JOIN last_touch AS t USING (member_id)
        WHERE m.enrollment_end IS NULL AND g.gap_status = 'OPEN' AND ($measure IS NULL OR g.measure_code = $measure)
          AND m.member_id NOT IN (SELECT member_id FROM opted_out) AND (t.ts IS NULL OR t.ts < $cutoff)""",
        {"channel": channel, "measure": measure, "cutoff": cutoff},
    )["member_id"]
    opted_out = set(
        query(
            api_world.warehouse,
            "SELECT member_id FROM silver.outreach_events WHERE channel = $c AND event_type = 'OPTED_OUT'",
            {"c": channel},
        )["member_id"]
    )
    assert opted_out, "the world has no opt-outs on this channel: the test could not fail"

    params = {
        "channel": channel,
        "not_touched_days": days,
        "as_of": as_of.isoformat(),
        **({"measure": measure} if measure else {}),
    }
    audience = _audience(server, full_key, **params)
    ids = [m["member_id"] for m in audience]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert set(ids) == set(expected) and len(ids) > 0
    assert not set(ids) & opted_out
    if measure:
        assert all(measure in m["open_gap_measures"] for m in audience)

    contract, region = audience[0]["contract_id"], audience[0]["region"]
    narrowed = _audience(server, full_key, contract=contract, region=region, **params)
    assert {m["member_id"] for m in narrowed} == {
        m["member_id"] for m in audience if (m["contract_id"], m["region"]) == (contract, region)
    }
    assert server.get("/v1/audiences", full_key, channel=channel, cursor="garbage").status_code == 422


def test_change_feed_returns_exactly_the_members_of_the_new_day(server, api_world, full_key):
    state = api_world.stores[server.name]
    changed, cursor = [], str(state.cursor_before_new_day)
    while True:
        page = server.get("/v1/changes", full_key, since=cursor, limit=40).json()
        if not page["changes"]:
            break
        changed += page["changes"]
        cursor = page["next_cursor"]
    seqs = [c["seq"] for c in changed]
    assert seqs == sorted(seqs) and all(s > state.cursor_before_new_day for s in seqs)
    touched = set(
        query(
            api_world.warehouse,
            """
        SELECT member_id FROM silver.outreach_events WHERE partition_date = $d
        UNION SELECT member_id FROM silver.appointment_events WHERE partition_date = $d""",
            {"d": NEW_DAY},
        )["member_id"]
    )
    assert touched
    assert {c["member_id"] for c in changed} == touched
    assert len(changed) == state.new_day_written
    for change in changed[:5]:
        assert change["document"]["member_id"] == change["member_id"]
    # Nothing newer than the last change.
    assert server.get("/v1/changes", full_key, since=cursor).json() == {"changes": [], "next_cursor": cursor}


def test_openapi_documents_the_endpoints_and_the_key_header(server):
    spec = server.get("/openapi.json").json()
    assert {"/v1/members/{member_ref}", "/v1/audiences", "/v1/changes", "/v1/health"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert server.get("/docs").status_code == 200


# --- rewriting documents in the store: lookups and audience indexes follow the new content ---------------------


@pytest.fixture(params=STORES)
def empty_store(request, postgres_url, tmp_path):
    """An empty document store of each kind (PostgreSQL: a fresh database on the session's server)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'documents.sqlite'}"
    else:
        database = f"rewrites_{os.getpid()}_{int(time.time() * 1000)}"
        admin = sa.create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        admin.dispose()
        url = make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
    store = DocumentStore(url)
    store.create_schema()
    yield store
    store.close()


def _document_rows(*documents: dict):
    import json

    import pyarrow as pa

    rows = [
        {
            "member_id": d["member_id"],
            "mbi": d["mbi"],
            "contract_id": "H1234",
            "region": d["region"],
            "enrolled": 1,
            "last_touch_epoch": None,
            "document": json.dumps(d),
            "content_hash": str(hash(json.dumps(d))),
            "open_gap_measures": d["gaps"],
            "opted_out_channels": d["opt_outs"],
        }
        for d in documents
    ]
    return pa.Table.from_pylist(rows)


def test_rewritten_documents_move_in_the_lookups_and_audiences(empty_store):
    store = empty_store
    assert not store.has_documents()
    store.write_documents(
        _document_rows(
            {"member_id": "M000000001", "mbi": "1AA0AA0AA01", "region": "NORTH", "gaps": ["BCS", "COL"], "opt_outs": []},
            {"member_id": "M000000002", "mbi": "1AA0AA0AA02", "region": "NORTH", "gaps": ["BCS"], "opt_outs": ["SMS"]},
        )
    )
    # The first member's MBI, region, open gaps and opt-outs all change; the second member is not rewritten.
    store.write_documents(
        _document_rows({"member_id": "M000000001", "mbi": "1AA0AA0AA03", "region": "SOUTH", "gaps": ["COL"], "opt_outs": ["SMS"]})
    )
    assert store.has_documents()
    assert store.document(mbi="1AA0AA0AA01") is None
    assert store.document(mbi="1AA0AA0AA03")[0] == "M000000001"
    assert store.document(mbi="1AA0AA0AA02")[0] == "M000000002"

    def audience(**filters) -> list[tuple[str, str, list[str]]]:
        return [(m["member_id"], m["region"], m["open_gap_measures"]) for m in store.audience(**filters)]

    assert audience(channel="EMAIL") == [("M000000001", "SOUTH", ["COL"]), ("M000000002", "NORTH", ["BCS"])]
    assert audience(channel="EMAIL", measure_code="BCS") == [("M000000002", "NORTH", ["BCS"])]
    assert audience(channel="EMAIL", region="NORTH") == [("M000000002", "NORTH", ["BCS"])]
    assert audience(channel="SMS") == []
    assert [(c["seq"], c["member_id"]) for c in store.changes(0, 10)] == [(2, "M000000002"), (3, "M000000001")]


def test_a_document_whose_content_is_unchanged_is_not_rewritten(empty_store):
    store = empty_store
    first = {"member_id": "M000000001", "mbi": "1AA0AA0AA01", "region": "NORTH", "gaps": ["BCS"], "opt_outs": []}
    second = {"member_id": "M000000002", "mbi": "1AA0AA0AA02", "region": "NORTH", "gaps": ["COL"], "opt_outs": []}
    assert store.write_documents(_document_rows(first, second)) == 2
    # The same two documents again, then one of them changed: only the changed one takes a new sequence number.
    assert store.write_documents(_document_rows(first, second)) == 0
    assert store.write_documents(_document_rows(first, {**second, "gaps": ["BCS", "COL"]})) == 1
    assert [(c["seq"], c["member_id"]) for c in store.changes(0, 10)] == [(1, "M000000001"), (3, "M000000002")]
    assert [m["open_gap_measures"] for m in store.audience(channel="EMAIL")] == [["BCS"], ["BCS", "COL"]]
