"""Declarative automation: the weekly snapshots follow silver on their own.

Gold facts and the model's weekly outputs carry `KEEP_CURRENT`: when the silver days of the latest
week change (a sensor run, the daily schedule, the weekly late-file backfill, a backfill from the
UI), the week's gold is rebuilt once every day of it is there and nothing upstream is still
running, then the predictions and levers from it. One sensor evaluates the conditions; it runs by
default, since nothing else keeps the snapshots current.
"""

import dagster as dg

KEEP_CURRENT = dg.AutomationCondition.eager()


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
                "contract predictions and measure levers after the silver days of that week change.",
            )
        ]
    )
