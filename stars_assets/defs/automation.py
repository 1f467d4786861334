"""Declarative automation: the weekly snapshots follow silver on their own.

Gold facts and the model's weekly outputs carry `KEEP_CURRENT`: when the silver days of the latest
week change (a sensor run, the daily schedule, the weekly late-file backfill, a backfill from the
UI), the week's gold is rebuilt once every day of it is there and nothing upstream is still
running, then the predictions and levers from it. The member outreach documents carry
`FOLLOW_UPSTREAM_DAYS`: a delivery date's documents are rebuilt after that date's silver changes, and
the days of a week after its gold or levers change (a new reference week makes the asset rebuild
every member), once nothing upstream is still running. One sensor evaluates the conditions; it runs
by default, since nothing else keeps the snapshots and documents current.
"""

import dagster as dg

KEEP_CURRENT = dg.AutomationCondition.eager()

# Eager without its two limits that do not fit a daily asset reading the newest week: any delivery date, not
# only the latest (a late file re-runs an older date), and without waiting for the date's week of gold and
# levers, which are built only after the week ends (the documents use the newest week there is). The
# unpartitioned member and care-gap snapshots do not trigger it: every ingest rewrites them, their changed
# rows carry the delivery date (snapshot_date), and that date's daily silver partitions are updated in the
# same run; but like every other silver input they must exist before a date is built.
SNAPSHOTS = dg.AssetSelection.assets(dg.AssetKey(["silver", "members"]), dg.AssetKey(["silver", "care_gaps"]))
WEEKLY_REFERENCES = dg.AssetSelection.assets(dg.AssetKey(["gold", "care_gap_closure"]), dg.AssetKey(["model", "measure_levers"]))
FOLLOW_UPSTREAM_DAYS = (
    dg.AutomationCondition.any_deps_updated().ignore(SNAPSHOTS).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing().ignore(WEEKLY_REFERENCES)
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("follow_upstream_days")


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "keep_snapshots_current",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=60,
                description="Evaluates the assets' automation conditions every minute: rebuilds the latest week's gold facts, "
                "contract predictions and measure levers after the silver days of that week change, and the member "
                "outreach documents of the delivery dates whose silver (or whose week's gold or levers) changed.",
            )
        ]
    )
