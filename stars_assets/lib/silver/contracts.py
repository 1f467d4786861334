"""Silver contracts: one pandera Ibis DataFrameModel per silver table, validated inside DuckDB.

A day of silver is tens of millions of rows, so the contracts never reach pandas: each model is
a `pandera.ibis.DataFrameModel`, its column and dataframe checks compile (through pandera's own
Ibis check implementations) to boolean expressions over the DuckDB table, and `validate_table`
counts every check's failures in one aggregate query. Only a few failing rows per failed check
ever leave the database, as masked examples.

Why not `Model.validate(table, lazy=True)` for the data checks: pandera 0.35's Ibis backend runs
one query per check, and as soon as a check fails it pulls that check's boolean output for every
row of the table into pandas (and every failure case, unless `n_failure_cases` is set); its
`not_nullable` and uniqueness failures report the repr of an Ibis expression instead of rows; and
`Field(unique=True)` on a column is accepted but never checked. So pandera's validator runs here
at SCHEMA_ONLY depth (column presence and exact dtypes, no data read), and the data checks are
evaluated by `validate_table` with pandera's semantics (nullable, `ignore_na`, `raise_warning`,
`Config.unique`, check names as pandera reports them).

What the existing SQL rules in stars_assets.lib.silver.quality already prove is not repeated here:
member-id coverage, event_id uniqueness across days, event times after delivery and starts before
booking, referential integrity against silver.members, and row reconciliation.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandera.backends.ibis.builtin_checks  # noqa: F401  (registers the Ibis implementations of the built-in checks)
import pandera.ibis as pa
from ibis.backends.sql.datatypes import DuckDBType
from ibis.common.deferred import Deferred
from ibis.common.exceptions import TableNotFound
from pandera.api.checks import Check
from pandera.api.ibis.types import IbisData
from pandera.config import ValidationDepth, config_context

from stars_assets.lib import vocabulary as v
from stars_assets.lib.bronze.quality import RuleOutcome
from stars_assets.lib.cms import crosswalk
from stars_assets.lib.contracts import column_checks
from stars_assets.lib.masking import mask_value
from stars_assets.lib.providers import load_registry
from stars_assets.lib.silver import tables
from stars_assets.lib.silver.identity import IDENTIFIER_PATTERNS, MBI_PATTERN
from stars_assets.lib.tables import TableSpec

MD5_HEX_PATTERN = r"^[0-9a-f]{32}$"  # event_id = md5(provider:event_key), state_hash
MEMBER_ID_PATTERN = IDENTIFIER_PATTERNS["member_id"]
VENDOR_REF_PATTERN = IDENTIFIER_PATTERNS["vendor_ref"]
CONTRACT_ID_PATTERN = r"^H[0-9]{4}$"  # MA-PD contracts

EXAMPLES_PER_CHECK = 3
MAX_EXAMPLES = 20
LINEAGE_COLUMNS = ("source_file", "source_row")

# --- contracts ----------------------------------------------------------------------------
#
# A contract's columns, dtypes and nullability come from the table spec (lib/silver/tables.py);
# what is written here are the rules on top: value checks per column and table-level checks.
# Uniqueness of the spec's primary key is checked for whole tables; an event table's key is
# verified by check_uniqueness_event_id over the deduplication window instead (a whole-table
# group-by would read the entire history on every run).


def _nonempty() -> list[Check]:
    return [Check.str_length(min_value=1)]


def _dtype(column) -> Any:
    """The Ibis dtype pandera checks for a DuckDB type (None: presence only; pandera's Ibis engine has no arrays)."""
    dtype = DuckDBType.from_string(column.type)
    return None if dtype.is_array() else dtype


def contract(spec: TableSpec, name: str, rules: dict[str, list[Check]], checks: Iterable[Check] = ()) -> pa.DataFrameSchema:
    """The pandera contract of a table: the spec's columns with their dtypes, nullability and codes, plus the rules."""
    unknown = set(rules) - set(spec.column_names)
    if unknown:
        raise ValueError(f"{spec.qualified_name}: rules for columns it does not have: {sorted(unknown)}")
    columns = {
        c.name: pa.Column(_dtype(c), nullable=c.nullable, checks=column_checks(c, rules), description=c.description or None)
        for c in spec.columns
    }
    return pa.DataFrameSchema(
        columns,
        checks=list(checks),
        name=name,
        title=spec.qualified_name,
        description=spec.description,
        unique=list(spec.primary_key) if spec.primary_key and not spec.partition_column else None,
    )


def _table_check(error: str, warning: bool = False) -> Callable[[Callable[[ir.Table], ir.BooleanColumn]], Check]:
    """A table-level rule written as an Ibis expression over the table."""

    def wrap(rule: Callable[[ir.Table], ir.BooleanColumn]) -> Check:
        return Check(lambda data: rule(data.table), name=rule.__name__, error=error, raise_warning=warning)

    return wrap


@_table_check("measure_codes names a measure that is not a care-gap measure", warning=True)
def known_measure_codes(t: ir.Table) -> ir.BooleanColumn:
    return t.measure_codes.isnull() | (t.measure_codes.filter(lambda code: ~code.isin(list(v.CARE_GAP_MEASURES))).length() == 0)


@_table_check("appointment_key does not start with '<provider>:'")
def appointment_key_names_its_provider(t: ir.Table) -> ir.BooleanColumn:
    return t.appointment_key.startswith(t.provider.concat(":"))


@_table_check("measure_code is not a care-gap measure", warning=True)
def known_measure_code(t: ir.Table) -> ir.BooleanColumn:
    return t.measure_code.isnull() | t.measure_code.isin(list(v.CARE_GAP_MEASURES))


@_table_check("more reschedules than events")
def reschedules_within_events(t: ir.Table) -> ir.BooleanColumn:
    return t.reschedules <= t.events


@_table_check("enrollment_end is before enrollment_start")
def enrollment_ends_after_it_starts(t: ir.Table) -> ir.BooleanColumn:
    return t.enrollment_end.isnull() | (t.enrollment_end >= t.enrollment_start)


@_table_check("cms_measure_id does not belong to measure_code")
def measure_ids_agree(t: ir.Table) -> ir.BooleanColumn:
    return t.measure_code.substitute(crosswalk.care_gap_measure_ids()) == t.cms_measure_id


@_table_check("close_date is before open_date")
def closure_not_before_opening(t: ir.Table) -> ir.BooleanColumn:
    return t.close_date.isnull() | (t.close_date >= t.open_date)


# Gold decides closure by close_date alone, so a disagreeing status is worth a look, not a stop.
@_table_check("gap_status disagrees with close_date", warning=True)
def status_matches_close_date(t: ir.Table) -> ir.BooleanColumn:
    return (t.gap_status == v.CLOSED) == t.close_date.notnull()


def _resolved_member() -> dict[str, list[Check]]:
    return {"member_id": [Check.str_matches(MEMBER_ID_PATTERN)], "contract_id": [Check.str_matches(CONTRACT_ID_PATTERN)]}


def _lineage() -> dict[str, list[Check]]:
    return {"source_file": _nonempty(), "source_row": [Check.greater_than(0)]}


@functools.cache
def _contracts() -> dict[str, pa.DataFrameSchema]:
    """Built on first use: the provider checks need the registry, which is not read at import."""
    registry = load_registry()
    outreach_providers = tuple(p.name for p in registry if p.kind == "outreach")
    emr_providers = tuple(p.name for p in registry if p.kind == "appointments")
    return {
        "outreach_events": contract(
            tables.OUTREACH_EVENTS,
            "OutreachEvents",
            {
                "event_id": [Check.str_matches(MD5_HEX_PATTERN)],
                "provider": [Check.isin(outreach_providers)],
                "event_key": _nonempty(),
                **_resolved_member(),
                **_lineage(),
            },
            [known_measure_codes],
        ),
        "appointment_events": contract(
            tables.APPOINTMENT_EVENTS,
            "AppointmentEvents",
            {
                "event_id": [Check.str_matches(MD5_HEX_PATTERN)],
                "provider": [Check.isin(emr_providers)],
                "event_key": _nonempty(),
                "appointment_key": _nonempty(),
                **_resolved_member(),
                **_lineage(),
            },
            [appointment_key_names_its_provider, known_measure_code],
        ),
        "appointments": contract(
            tables.APPOINTMENTS,
            "Appointments",
            {
                "appointment_key": _nonempty(),
                "provider": [Check.isin(emr_providers)],
                **_resolved_member(),
                "events": [Check.greater_than_or_equal_to(1)],
                "reschedules": [Check.greater_than_or_equal_to(0)],
                "state_hash": [Check.str_matches(MD5_HEX_PATTERN)],
            },
            [appointment_key_names_its_provider, reschedules_within_events],
        ),
        "members": contract(
            tables.MEMBERS,
            "Members",
            {
                **_resolved_member(),
                "mbi": [Check.str_matches(MBI_PATTERN)],
                "vendor_ref": [Check.str_matches(VENDOR_REF_PATTERN)],
                **_lineage(),
            },
            [enrollment_ends_after_it_starts],
        ),
        "care_gaps": contract(
            tables.CARE_GAPS,
            "CareGaps",
            {
                "gap_id": _nonempty(),
                "member_id": [Check.str_matches(MEMBER_ID_PATTERN)],
                "cms_measure_id": [Check.isin(list(crosswalk.care_gap_measure_ids().values()))],
                "measurement_year": [Check.in_range(2000, 2099)],
                **_lineage(),
            },
            [measure_ids_agree, closure_not_before_opening, status_matches_close_date],
        ),
        "rx_fills": contract(
            tables.RX_FILLS,
            "RxFills",
            {
                "fill_id": _nonempty(),
                "member_id": [Check.str_matches(MEMBER_ID_PATTERN)],
                "days_supply": [Check.in_range(1, 365)],
                **_lineage(),
            },
        ),
    }


_NAMES = {
    "OutreachEvents": "outreach_events",
    "AppointmentEvents": "appointment_events",
    "Appointments": "appointments",
    "Members": "members",
    "CareGaps": "care_gaps",
    "RxFills": "rx_fills",
}


def __getattr__(name: str) -> Any:
    """CONTRACTS (table -> contract) and each contract by name, built on first access."""
    if name == "CONTRACTS":
        return _contracts()
    if name in _NAMES:
        return _contracts()[_NAMES[name]]
    raise AttributeError(name)


# --- validation in the database -----------------------------------------------------------

Connection = str | Path | duckdb.DuckDBPyConnection | ibis.BaseBackend
Where = _dt.date | Iterable[_dt.date] | Callable[[ir.Table], ir.BooleanValue] | Deferred | None


@dataclass(frozen=True)
class _Rule:
    column: str | None  # None for a table-level rule
    check: str  # the name pandera reports for the check
    bad: ir.BooleanValue | None  # per row: True where the row fails
    show: tuple[str, ...]  # columns an example shows
    warning: bool = False

    @property
    def label(self) -> str:
        return f"{self.column or 'table'}: {self.check}"


@contextmanager
def ibis_backend(connection: Connection) -> Iterator[ibis.BaseBackend]:
    """An Ibis DuckDB backend over what the caller has, without a second write connection.

    A path opens the file read-only; an open DuckDB connection (a DuckDBResource's) is wrapped
    as is, and the session settings Ibis changes on it (time zone, replacement scans) are put back.
    """
    if isinstance(connection, ibis.BaseBackend):
        yield connection
    elif isinstance(connection, (str, Path)):
        backend = ibis.duckdb.connect(str(connection), read_only=True)
        try:
            yield backend
        finally:
            backend.disconnect()
    elif isinstance(connection, duckdb.DuckDBPyConnection):
        zone, replacements = connection.execute(
            "SELECT current_setting('TimeZone'), current_setting('python_enable_replacements')"
        ).fetchone()
        try:
            yield ibis.duckdb.from_connection(connection)
        finally:
            connection.execute(f"SET TimeZone = '{str(zone).replace(chr(39), chr(39) * 2)}'")
            connection.execute(f"SET python_enable_replacements = {'true' if replacements else 'false'}")
    else:
        raise TypeError(f"expected a database path, a DuckDB connection or an Ibis backend, got {type(connection)}")


def check_name(check: Check) -> str:
    """The identifier pandera puts in the `check` column of its failure cases."""
    return check.error if check.error is not None else (check.name or str(check))


def _fields(expr: ir.Expr, table: ir.Table) -> tuple[str, ...]:
    names = {f.name for f in expr.op().find(ops.Field) if f.rel == table.op()}
    return tuple(c for c in table.columns if c in names)


def _passes(check: Check, table: ir.Table, column: str | None) -> ir.BooleanValue:
    """The check as one boolean per row of `table`, with pandera's null handling."""
    if check.element_wise:
        raise NotImplementedError("element-wise checks run Python per row; write the check as an Ibis expression")
    out = check._check_fn(IbisData(table, column), **check._check_kwargs)
    if isinstance(out, dict):
        out = ibis.and_(*out.values())
    if isinstance(out, ir.Table):
        # The built-in checks select one boolean per checked column from the table itself
        # (a projection); reading the projected expressions keeps them on the table's rows,
        # so every check can be counted in the same aggregate query.
        node = out.op()
        if not (isinstance(node, ops.Project) and node.parent == table.op()):
            raise TypeError(f"check {check_name(check)} returned a table that is not a projection of the checked table")
        values = [v.to_expr() for v in node.values.values()]
        if not all(v.type().is_boolean() for v in values):
            raise TypeError(f"check {check_name(check)} returned non-boolean columns")
        out = ibis.and_(*values)
    if isinstance(out, bool):
        out = ibis.literal(out)
    if not isinstance(out, ir.BooleanValue):
        raise TypeError(f"check {check_name(check)} returned {type(out).__name__}, not booleans")
    passes = out.fill_null(bool(check.ignore_na))
    if column is not None and check.ignore_na:
        passes = passes | table[column].isnull()
    return passes


def _schema_failures(schema, table: ir.Table) -> list[tuple[_Rule, int, list[str]]]:
    """Column presence and exact dtypes, by pandera itself at SCHEMA_ONLY depth (reads no data)."""
    try:
        with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
            schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = []
        for row in errors.failure_cases.itertuples():
            column = row.failure_case if row.check == "column_in_dataframe" else row.column
            failures.append(
                (_Rule(str(column), str(row.check), None, ()), 1, [f"{column}: {row.check} (found {row.failure_case})"])
            )
        return failures
    return []


def _rules(schema, table: ir.Table, skip: set[str]) -> tuple[list[_Rule], list[tuple[_Rule, int, list[str]]]]:
    rules: list[_Rule] = []
    errors: list[tuple[_Rule, int, list[str]]] = []

    def add(column: str | None, check: Check | str, build: Callable[[], ir.BooleanValue], warning: bool = False) -> None:
        name = check if isinstance(check, str) else check_name(check)
        try:
            bad = build()
            show = (column,) if column is not None else _fields(bad, table)
            rules.append(_Rule(column, name, bad, show, warning))
        except Exception as exc:  # a check that cannot even be built is a failed check, not a crash
            errors.append((_Rule(column, name, None, ()), 1, [f"{column or 'table'}: {name} could not run: {exc}"]))

    for column, spec in schema.columns.items():
        if column in skip:
            continue
        if not spec.nullable:
            col = table[column]
            add(column, "not_nullable", lambda col=col: col.isnull() | col.isnan() if col.type().is_floating() else col.isnull())
        for check in spec.checks:
            add(column, check, lambda c=check, k=column: ~_passes(c, table, k), warning=check.raise_warning)
    for check in schema.checks:
        add(None, check, lambda c=check: ~_passes(c, table, None), warning=check.raise_warning)
    return rules, errors


def _unique_subsets(schema) -> list[list[str]]:
    subsets = []
    if schema.unique:
        subsets += [list(schema.unique)] if all(isinstance(c, str) for c in schema.unique) else [list(s) for s in schema.unique]
    # pandera's Ibis backend accepts Field(unique=True) but never checks it; honour it here.
    subsets += [[name] for name, spec in schema.columns.items() if getattr(spec, "unique", False)]
    return subsets


def _show(column: str, value: Any) -> str:
    if value is None:
        return "null"
    return mask_value(column, value)[:60]


def _example(rule: _Rule, row: dict) -> str:
    values = ", ".join(f"{c}={_show(c, row.get(c))}" for c in rule.show)
    lineage = all(c in row for c in LINEAGE_COLUMNS)
    where = f" at {_show('source_file', row['source_file'])}:{row['source_row']}" if lineage else ""
    return f"{rule.label} ({values}){where}"


def _scoped(table: ir.Table, where: Where) -> tuple[ir.Table, str]:
    if where is None:
        return table, "all partitions"
    if isinstance(where, Deferred):
        return table.filter(where), "filtered"
    if callable(where):
        return table.filter(where(table)), "filtered"
    days = [where] if isinstance(where, _dt.date) else sorted(set(where))
    if "partition_date" not in table.columns:
        raise ValueError("a partition filter needs a partition_date column")
    return table.filter(table.partition_date.isin(days)), "partition_date in " + ", ".join(str(d) for d in days)


def validate_table(
    connection: Connection,
    schema: str,
    table: str,
    contract: pa.DataFrameSchema,
    where: Where = None,
    examples: int = EXAMPLES_PER_CHECK,
) -> RuleOutcome:
    """Validate `schema.table` against `contract` inside DuckDB; failures counted by check, examples masked.

    `where` limits the rows: a delivery date or dates (on partition_date) or a function of the
    Ibis table returning a boolean filter. The table is read once for all row checks, once per
    uniqueness rule, and once per failed check for its examples; nothing else leaves the database.
    A check declared with raise_warning=True is reported under warnings_by_check and does not fail
    the outcome.
    """
    qualified = f"{schema}.{table}"
    with ibis_backend(connection) as backend:
        try:
            source = backend.table(table, database=schema)
        except TableNotFound:
            return RuleOutcome(passed=False, metadata={"table": qualified, "error": "table does not exist"})
        rows, scope = _scoped(source, where)
        checked, results = _validate_groups(rows, contract, None, [None], examples)[None]
    return _outcome(qualified, contract, scope, checked, results)


def validate_partitions(
    connection: Connection,
    schema: str,
    table: str,
    contract: pa.DataFrameSchema,
    days: Iterable[_dt.date],
    examples: int = EXAMPLES_PER_CHECK,
) -> dict[_dt.date, RuleOutcome]:
    """`validate_table` for each delivery date of `days`, with the same outcomes, in one pass over the range:
    the row checks are counted in one aggregate grouped by partition_date (a range run reads its days once,
    not once per day), and each failed check's examples are picked per day in one more query."""
    days = sorted(set(days))
    qualified = f"{schema}.{table}"
    with ibis_backend(connection) as backend:
        try:
            source = backend.table(table, database=schema)
        except TableNotFound:
            missing = RuleOutcome(passed=False, metadata={"table": qualified, "error": "table does not exist"})
            return dict.fromkeys(days, missing)
        rows, _ = _scoped(source, days)
        by_day = _validate_groups(rows, contract, "partition_date", days, examples)
    return {
        day: _outcome(qualified, contract, f"partition_date in {day}", checked, results)
        for day, (checked, results) in by_day.items()
    }


_Results = list[tuple[_Rule, int, list[str]]]


def _validate_groups(
    rows: ir.Table, contract: pa.DataFrameSchema, by: str | None, groups: list, examples: int
) -> dict[Any, tuple[int, _Results]]:
    """Every rule of `contract` over `rows`, for each value in `groups` of the column `by` (by=None: all the rows
    are the one group None): the rows checked and (rule, failures, masked examples). A group without rows has
    none of either. validate_table and validate_partitions differ only in how they group, so they cannot drift."""
    shared = _schema_failures(contract, rows)
    unusable = {r.column for r, _, _ in shared if r.column in contract.columns}
    rules, errors = _rules(contract, rows, unusable)
    shared += errors
    keys = [by] if by else []

    def group_of(row: dict) -> Any:
        return row[by] if by else None

    def per_group(table: ir.Table) -> ir.Table:
        return table.group_by(keys) if keys else table

    def first(table: ir.Table, order_by=None) -> ir.Table:
        """Up to `examples` rows of each group (one group: a LIMIT, which stops reading early)."""
        if not keys:
            return (table if order_by is None else table.order_by(order_by)).limit(examples)
        return table.filter(ibis.row_number().over(group_by=keys, order_by=order_by) < examples)

    tallies = {
        group_of(row): row
        for row in per_group(rows)
        .aggregate(_rows=rows.count(), **{f"_rule_{i}": rows.count(where=rule.bad) for i, rule in enumerate(rules)})
        .to_pyarrow()
        .to_pylist()
    }
    results: dict[Any, _Results] = {group: list(shared) for group in groups}
    lineage = [c for c in LINEAGE_COLUMNS if c in rows.columns]
    for i, rule in enumerate(rules):
        failing = [group for group, tally in tallies.items() if tally[f"_rule_{i}"]]
        shown: dict[Any, list[str]] = {group: [] for group in failing}
        if failing:
            bad = rows.filter(rule.bad & rows[by].isin(failing)) if by else rows.filter(rule.bad)
            for row in first(bad.select(*dict.fromkeys([*keys, *rule.show, *lineage]))).to_pyarrow().to_pylist():
                shown[group_of(row)].append(_example(rule, row))
        for group in groups:
            failed = tallies[group][f"_rule_{i}"] if group in tallies else 0
            results[group].append((rule, int(failed), shown.get(group, [])))

    for subset in _unique_subsets(contract):
        rule = _Rule(", ".join(subset), "multiple_fields_uniqueness", None, tuple(subset))
        if set(subset) - set(rows.columns) or set(subset) & unusable:
            continue
        copies = rows.group_by([*keys, *subset]).aggregate(_copies=ibis._.count()).filter(ibis._._copies > 1)
        duplicated = {
            group_of(row): row["n"] or 0 for row in per_group(copies).aggregate(n=copies._copies.sum()).to_pyarrow().to_pylist()
        }
        shown = {group: [] for group in duplicated}
        if any(duplicated.values()):
            for row in first(copies, order_by=ibis.desc("_copies")).to_pyarrow().to_pylist():
                values = ", ".join(f"{c}={_show(c, row[c])}" for c in subset)
                shown[group_of(row)].append(f"{rule.label} ({values} x{row['_copies']})")
        for group in groups:
            results[group].append((rule, int(duplicated.get(group) or 0), shown.get(group, [])))

    return {group: (int(tallies[group]["_rows"]) if group in tallies else 0, results[group]) for group in groups}


def _outcome(
    qualified: str, contract: pa.DataFrameSchema, scope: str, rows_checked: int, results: list[tuple[_Rule, int, list[str]]]
) -> RuleOutcome:
    failing = [(r, n, ex) for r, n, ex in results if n and not r.warning]
    warned = [(r, n, ex) for r, n, ex in results if n and r.warning]
    metadata: dict[str, Any] = {
        "table": qualified,
        "contract": contract.name,
        "scope": scope,
        "rows_checked": rows_checked,
        "checks_run": len(results),
        "failures": sum(n for _, n, _ in failing),
        "failures_by_check": {r.label: n for r, n, _ in failing},
        "examples": [e for _, _, ex in failing for e in ex][:MAX_EXAMPLES],
    }
    if warned:
        metadata["warnings_by_check"] = {r.label: n for r, n, _ in warned}
        metadata["warning_examples"] = [e for _, _, ex in warned for e in ex][:MAX_EXAMPLES]
    return RuleOutcome(passed=not failing, metadata=metadata)
