"""What the pandera contracts (silver's Ibis ones, gold's pandas ones) take from a table spec's column beyond its
dtype and nullability."""

from __future__ import annotations

from collections.abc import Mapping

from pandera.api.checks import Check

from stars_assets.lib.tables import Column


def column_checks(column: Column, rules: Mapping[str, list[Check]]) -> list[Check]:
    """The check of a vocabulary column's codes, then the rules written for the column."""
    return [*([Check.isin(column.values)] if column.values else []), *rules.get(column.name, [])]
