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


def section(title: str, layer: str, name: str) -> pd.DataFrame | None:
    """A section's heading and the published table it shows (None, with a note, when there is none yet)."""
    st.subheader(title)
    return table(layer, name)


def show_table(frame: pd.DataFrame, name: str) -> None:
    """The frame as a table, with a button to download it as `name`.csv."""
    st.dataframe(frame, hide_index=True, key=f"{name}_table")
    download(frame, name)


def bars_and_table(frame: pd.DataFrame, name: str, target: str | None = None, **encoding) -> None:
    """A bar chart of the frame, with a red tick per bar at the `target` field if given, then the frame as a table."""
    chart = bar_chart(frame, **encoding)
    if target:
        chart += alt.Chart(frame).mark_tick(color="red", thickness=2, size=30).encode(x=encoding["x"], y=target)
    st.altair_chart(chart)
    show_table(frame, name)


def source(*tables: str) -> None:
    st.caption("Source: lake table(s) " + ", ".join(tables) + ". Aggregates only; no member identifiers.")
