"""generate(): build the world, simulate it, and write every delivery day of a window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import codes, edw
from .faults import FAULT_KINDS, MAX_DELIVERY_LAG, FaultPlan, resolve_rates
from .render import DELIVERY_MINUTE, Context, SlotTarget, deliver_day
from .simulation import Simulation
from .truth import TruthWriter
from .world import build_world
from .writers import write_parquet

GENERATOR_VERSION = 1
MIN_MEMBERS = 100


@dataclass
class RunSummary:
    out_dir: Path
    start_date: dt.date
    end_date: dt.date
    files_by_provider: dict[str, int] = field(default_factory=dict)
    rows_by_provider: dict[str, int] = field(default_factory=dict)
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    outreach_events_by_expected: dict[str, int] = field(default_factory=dict)
    appointment_events_by_expected: dict[str, int] = field(default_factory=dict)


def validate_options(members: int, days: int, start_date: dt.date, outreach_rows_per_day: int | None) -> None:
    if members < MIN_MEMBERS:
        raise ValueError(f"--members must be at least {MIN_MEMBERS}, got {members}")
    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    if start_date < codes.EPOCH:
        raise ValueError(
            f"--start-date must be {codes.EPOCH.isoformat()} or later (the simulated world starts then), got {start_date.isoformat()}"
        )
    end = start_date + dt.timedelta(days=days - 1)
    if end > codes.LAST_SUPPORTED_DAY:
        raise ValueError(f"the window must end by {codes.LAST_SUPPORTED_DAY.isoformat()}, got {end.isoformat()}")
    if outreach_rows_per_day is not None and outreach_rows_per_day < 1:
        raise ValueError(f"--outreach-rows-per-day must be at least 1, got {outreach_rows_per_day}")


def generate(
    out_dir: Path | str,
    *,
    seed: int = 7,
    members: int = 100_000,
    days: int = 14,
    start_date: dt.date = dt.date(2026, 10, 1),
    outreach_rows_per_day: int | None = None,
    fault_rates: dict[str, float] | None = None,
    faults: bool = True,
    progress: Callable[[str], None] | None = None,
) -> RunSummary:
    """Write `days` delivery days from `start_date` under out_dir, with ground truth in out_dir/_truth."""
    validate_options(members, days, start_date, outreach_rows_per_day)
    rates = resolve_rates(fault_rates, faults)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    end = start_date + dt.timedelta(days=days - 1)
    say = progress or (lambda message: None)

    world = build_world(seed, members)
    say(
        f"world: {members} members in {len(world.contracts)} contracts; simulating {codes.EPOCH.isoformat()} to {end.isoformat()}"
    )
    sim = Simulation(world, outreach_rows_per_day).run(end, keep_from=start_date - dt.timedelta(days=MAX_DELIVERY_LAG))
    truth = TruthWriter(out)
    ctx = Context(world, sim, None, out, start_date, end, truth)  # type: ignore[arg-type]
    ctx.plan = FaultPlan(seed, rates, rows_of=ctx.rows_of)

    day = start_date
    while day <= end:
        before_files, before_faults = len(ctx.files), sum(truth.faults_by_kind.values())
        deliver_day(ctx, day)
        write_edw_day(ctx, day)
        written = ctx.files[before_files:]
        per_provider = {
            p: (sum(1 for f in written if f.provider == p), sum(f.rows for f in written if f.provider == p))
            for p in codes.ALL_PROVIDERS
        }
        say(
            f"{day.isoformat()}  "
            + "  ".join(f"{p} {n}f/{r}r" for p, (n, r) in per_provider.items())
            + f"  faults +{sum(truth.faults_by_kind.values()) - before_faults}"
        )
        day += dt.timedelta(days=1)

    summary = RunSummary(out, start_date, end)
    for f in ctx.files:
        summary.files_by_provider[f.provider] = summary.files_by_provider.get(f.provider, 0) + 1
        summary.rows_by_provider[f.provider] = summary.rows_by_provider.get(f.provider, 0) + f.rows
    summary.faults_by_kind = {k: truth.faults_by_kind.get(k, 0) for k in FAULT_KINDS}
    summary.outreach_events_by_expected = dict(sorted(truth.outreach_expected.items()))
    summary.appointment_events_by_expected = dict(sorted(truth.appointment_expected.items()))
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "options": {
            "seed": seed,
            "members": members,
            "days": days,
            "start_date": start_date.isoformat(),
            "end_date": end.isoformat(),
            "outreach_rows_per_day": outreach_rows_per_day,
            "faults": faults,
            "fault_rates": rates,
        },
        "files_by_provider": summary.files_by_provider,
        "rows_by_provider": summary.rows_by_provider,
        "faults_by_kind": summary.faults_by_kind,
        "outreach_events_by_expected": summary.outreach_events_by_expected,
        "appointment_events_by_expected": summary.appointment_events_by_expected,
        "files": sorted(f.rel_name for f in ctx.files),
    }
    truth.finish(world, sim, start_date, end, manifest)
    return summary


def write_edw_day(ctx: Context, day: dt.date) -> None:
    """Extracts: snapshots on the window's first day and each 1st, fills daily (history on day one)."""
    ymd = day.strftime("%Y%m%d")
    tables = {f"edw/rx_fills_{ymd}.parquet": edw.rx_fills(ctx.world, day, day)}
    if day == ctx.start and day != dt.date(day.year, 1, 1):
        # Year-to-date history in its own file, so the daily file stays a function of its date.
        tables[f"edw/rx_fills_{ymd}_ytd.parquet"] = edw.rx_fills(ctx.world, dt.date(day.year, 1, 1), day - dt.timedelta(days=1))
    if day == ctx.start or day.day == 1:
        tables[f"edw/members_{ymd}.parquet"] = edw.members_snapshot(ctx.world, day)
        tables[f"edw/care_gaps_{ymd}.parquet"] = edw.care_gaps_snapshot(ctx.world, ctx.sim, day)
        tables[f"edw/contract_quality_{ymd}.parquet"] = edw.contract_quality(ctx.world, day)
    for rel_name, table in tables.items():
        write_parquet(table, ctx.out / rel_name)
        ctx.finish_file(SlotTarget(rel_name, day, day, DELIVERY_MINUTE["edw"]), "edw", table.num_rows)
