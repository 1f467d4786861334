"""Streamlit helpers the pages share: cached lake reads, CSV downloads, query-parameter widgets."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from stars_assets.dashboard import data
from stars_assets.lib import lake

REFRESH_SECONDS = 60  # a newly published lake version shows within a minute


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _read(uri: str, layer: str, table: str, columns: tuple[str, ...] | None) -> pd.DataFrame:
    return data.read(layer, table, list(columns) if columns else None)  # uri: only the cache key


def table(layer: str, name: str, columns: list[str] | None = None) -> pd.DataFrame | None:
    """A published table, or None with a note on the page when it is not published yet or has no rows."""
    try:
        frame = _read(lake.table_uri(layer, name), layer, name, tuple(columns) if columns else None)
    except lake.UnknownTableError:
        st.info(f"Table {layer}/{name} is not published to the lake yet: run the publish job (or `make demo`).")
        return None
    if frame.empty:
        st.info(f"Table {layer}/{name} has no rows yet.")
        return None
    return frame


def download(frame: pd.DataFrame, name: str, label: str = "Download CSV") -> None:
    st.download_button(label, frame.to_csv(index=False).encode(), file_name=f"{name}.csv", mime="text/csv", key=f"csv_{name}")


def bar_chart(frame: pd.DataFrame, **encoding) -> alt.Chart:
    return alt.Chart(frame).mark_bar().encode(**encoding)


def show_table(frame: pd.DataFrame, key: str, csv_name: str) -> None:
    """The frame as a table, with a button to download it as CSV."""
    st.dataframe(frame, hide_index=True, key=key)
    download(frame, csv_name)


def source(*tables: str) -> None:
    st.caption("Source: lake table(s) " + ", ".join(tables) + ". Aggregates only; no member identifiers.")
