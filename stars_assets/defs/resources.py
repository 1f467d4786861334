"""Resources shared by every domain. `duckdb` and `io_manager` point at the same DuckDB file; `document_store`
holds the member documents the API serves.

SQL layers (bronze, silver, gold) run their SQL through `duckdb`; small frame-shaped layers
(cms, model) return pandas DataFrames that `io_manager` stores in the schema named by the
asset key prefix.
"""

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from stars_assets import settings
from stars_assets.lib.documents.store import DocumentStore, default_url
from stars_assets.lib.warehouse import DEFAULT_LOCK_WAIT_SECONDS, connect_waiting_for_lock


class LandingZone(dg.ConfigurableResource):
    """Root folder holding one sub-folder per provider, where vendors drop files."""

    root: str

    def provider_dir(self, provider: str) -> Path:
        return Path(self.root) / provider


class WarehouseResource(DuckDBResource):
    """The warehouse connection: when another process holds the file's lock, the step logs who holds it and
    waits (bounded) instead of failing or stalling silently."""

    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS

    @contextmanager
    def get_connection(self):
        connection = connect_waiting_for_lock(
            self.database,
            config={"custom_user_agent": "dagster", **self.connection_config},
            max_wait_seconds=self.lock_wait_seconds,
            on_wait=dg.get_dagster_logger().warning,
        )
        try:
            yield connection
        finally:
            connection.close()


class DocumentStoreResource(dg.ConfigurableResource):
    """Where member documents live: a sqlite:/// or postgresql:// URL (default: STARS_DOCUMENT_STORE_URL,
    else <STARS_DATA_DIR>/documents.sqlite)."""

    url: str | None = None

    def open(self) -> DocumentStore:
        store = DocumentStore(self.url or default_url())
        store.create_schema()
        return store


def build_resources(warehouse: str | None = None, landing: str | None = None, documents: str | None = None) -> dict:
    database = warehouse or str(settings.warehouse_path())
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": WarehouseResource(database=database),
        "io_manager": DuckDBPandasIOManager(database=database),
        "landing": LandingZone(root=landing or str(settings.landing_dir())),
        "document_store": DocumentStoreResource(url=documents),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
