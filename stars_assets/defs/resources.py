"""Resources shared by every domain. Both point at the same DuckDB file.

SQL layers (bronze, silver, gold) run their SQL through `duckdb`; small frame-shaped layers
(cms, model) return pandas DataFrames that `io_manager` stores in the schema named by the
asset key prefix.
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from stars_assets import settings


class LandingZone(dg.ConfigurableResource):
    """Root folder holding one sub-folder per provider, where vendors drop files."""

    root: str

    def provider_dir(self, provider: str) -> Path:
        return Path(self.root) / provider


def build_resources(warehouse: str | None = None, landing: str | None = None) -> dict:
    database = warehouse or str(settings.warehouse_path())
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": DuckDBResource(database=database),
        "io_manager": DuckDBPandasIOManager(database=database),
        "landing": LandingZone(root=landing or str(settings.landing_dir())),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
