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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import duckdb
import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandera.backends.ibis.builtin_checks  # noqa: F401  (registers the Ibis implementations of the built-in checks)
import pandera.ibis as pa
from ibis.common.deferred import Deferred
from ibis.common.exceptions import TableNotFound
from pandera.api.checks import Check
from pandera.api.ibis.types import IbisData
from pandera.config import ValidationDepth, config_context
from pandera.engines.ibis_engine import DateTime

from stars_assets.lib.bronze.quality import RuleOutcome
from stars_assets.lib.cms import crosswalk
from stars_assets.lib.masking import MEMBER_IDENTIFIER_COLUMNS, mask_identifier, mask_text
from stars_assets.lib.providers import APPOINTMENT_STATUSES, CANONICAL_CHANNELS, CANONICAL_EVENT_TYPES, load_registry
from stars_assets.lib.silver.identity import IDENTIFIER_PATTERNS, MBI_PATTERN

# --- vocabularies -------------------------------------------------------------------------

_REGISTRY = load_registry()
OUTREACH_PROVIDERS = tuple(p.name for p in _REGISTRY if p.kind == "outreach")
EMR_PROVIDERS = tuple(p.name for p in _REGISTRY if p.kind == "appointments")

# Member-level care-gap measures and their CMS Star Ratings measure ids, in the numbering the vendors send
# (the 2026 star year's), from the measure crosswalk.
CARE_GAP_MEASURE_KEYS = {"BCS": "breast_cancer_screening", "COL": "colorectal_cancer_screening", "EED": "diabetes_eye_exam",
                         "GSD": "diabetes_blood_sugar_controlled", "CBP": "controlling_blood_pressure", "TRC": "transitions_of_care"}
CARE_GAP_ID_STAR_YEAR = 2026
CARE_GAP_MEASURES = {code: crosswalk.measure_id(key, CARE_GAP_ID_STAR_YEAR) for code, key in CARE_GAP_MEASURE_KEYS.items()}
GAP_STATUSES = ("OPEN", "CLOSED")
# Part D adherence drug classes (D08 diabetes, D09 RAS antagonists, D10 statins).
DRUG_CLASSES = ("DIABETES", "RASA", "STATIN")

MD5_HEX_PATTERN = r"^[0-9a-f]{32}$"  # event_id = md5(provider:event_key), state_hash
MEMBER_ID_PATTERN = IDENTIFIER_PATTERNS["member_id"]
VENDOR_REF_PATTERN = IDENTIFIER_PATTERNS["vendor_ref"]
CONTRACT_ID_PATTERN = r"^H[0-9]{4}$"  # MA-PD contracts

# DuckDB TIMESTAMP is microsecond precision: Ibis types it timestamp(6), and pandera compares exactly.
Timestamp = Annotated[DateTime, None, 6]

EXAMPLES_PER_CHECK = 3
MAX_EXAMPLES = 20
LINEAGE_COLUMNS = ("source_file", "source_row")


def _nonempty(**kwargs) -> Any:
    return pa.Field(str_length={"min_value": 1}, **kwargs)


# --- contracts ----------------------------------------------------------------------------


class OutreachEvents(pa.DataFrameModel):
    """silver.outreach_events: one canonical row per outreach event, traceable to its source row."""

    event_id: str = pa.Field(str_matches=MD5_HEX_PATTERN)
    provider: str = pa.Field(isin=OUTREACH_PROVIDERS)
    event_key: str = _nonempty()
    member_id: str = pa.Field(str_matches=MEMBER_ID_PATTERN)
    contract_id: str = pa.Field(str_matches=CONTRACT_ID_PATTERN)
    region: str
    channel: str = pa.Field(isin=CANONICAL_CHANNELS)
    event_type: str = pa.Field(isin=CANONICAL_EVENT_TYPES)
    event_ts: Timestamp
    source_file: str = _nonempty()
    source_row: int = pa.Field(gt=0)
    partition_date: _dt.date

    @pa.dataframe_check(error="measure_codes names a measure that is not a care-gap measure", raise_warning=True)
    def known_measure_codes(cls, data: IbisData) -> ir.BooleanColumn:
        codes = data.table.measure_codes
        return codes.isnull() | (codes.filter(lambda code: ~code.isin(list(CARE_GAP_MEASURES))).length() == 0)

    class Config:
        name = "silver.outreach_events"


class AppointmentEvents(pa.DataFrameModel):
    """silver.appointment_events: every EMR message or FHIR version, with resolved member and UTC times."""

    event_id: str = pa.Field(str_matches=MD5_HEX_PATTERN)
    provider: str = pa.Field(isin=EMR_PROVIDERS)
    event_key: str = _nonempty()
    appointment_key: str = _nonempty()
    member_id: str = pa.Field(str_matches=MEMBER_ID_PATTERN)
    contract_id: str = pa.Field(str_matches=CONTRACT_ID_PATTERN)
    region: str
    status: str = pa.Field(isin=APPOINTMENT_STATUSES)
    event_ts: Timestamp
    start_ts: Timestamp
    booked_ts: Timestamp = pa.Field(nullable=True)
    measure_code: str = pa.Field(nullable=True)
    source_file: str = _nonempty()
    source_row: int = pa.Field(gt=0)
    partition_date: _dt.date

    @pa.dataframe_check(error="appointment_key does not start with '<provider>:'")
    def appointment_key_names_its_provider(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return t.appointment_key.startswith(t.provider.concat(":"))

    @pa.dataframe_check(error="measure_code is not a care-gap measure", raise_warning=True)
    def known_measure_code(cls, data: IbisData) -> ir.BooleanColumn:
        code = data.table.measure_code
        return code.isnull() | code.isin(list(CARE_GAP_MEASURES))

    class Config:
        name = "silver.appointment_events"


class Appointments(pa.DataFrameModel):
    """silver.appointments: latest state per source-qualified appointment (the key is the primary key)."""

    appointment_key: str = _nonempty()
    provider: str = pa.Field(isin=EMR_PROVIDERS)
    member_id: str = pa.Field(str_matches=MEMBER_ID_PATTERN)
    contract_id: str = pa.Field(str_matches=CONTRACT_ID_PATTERN)
    region: str
    status: str = pa.Field(isin=APPOINTMENT_STATUSES)
    start_ts: Timestamp
    booked_ts: Timestamp = pa.Field(nullable=True)
    last_event_ts: Timestamp
    measure_code: str = pa.Field(nullable=True)
    events: int = pa.Field(ge=1)
    reschedules: int = pa.Field(ge=0)
    state_hash: str = pa.Field(str_matches=MD5_HEX_PATTERN)
    updated_at: Timestamp

    @pa.dataframe_check(error="appointment_key does not start with '<provider>:'")
    def appointment_key_names_its_provider(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return t.appointment_key.startswith(t.provider.concat(":"))

    @pa.dataframe_check(error="more reschedules than events")
    def reschedules_within_events(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return t.reschedules <= t.events

    class Config:
        name = "silver.appointments"


class Members(pa.DataFrameModel):
    """silver.members: one row per member from the latest enrollment snapshot; the identity crosswalk's source."""

    member_id: str = pa.Field(str_matches=MEMBER_ID_PATTERN)
    mbi: str = pa.Field(str_matches=MBI_PATTERN, nullable=True)
    vendor_ref: str = pa.Field(str_matches=VENDOR_REF_PATTERN, nullable=True)
    birth_date: _dt.date
    sex: str = pa.Field(nullable=True)
    contract_id: str = pa.Field(str_matches=CONTRACT_ID_PATTERN)
    region: str
    # try_cast(... AS BOOLEAN) in silver: a null is a value the cast could not read.
    dual_status: bool
    lis_status: bool
    enrollment_start: _dt.date
    enrollment_end: _dt.date = pa.Field(nullable=True)
    has_diabetes: bool
    has_hypertension: bool
    has_hyperlipidemia: bool
    snapshot_date: _dt.date

    @pa.dataframe_check(error="enrollment_end is before enrollment_start")
    def enrollment_ends_after_it_starts(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return t.enrollment_end.isnull() | (t.enrollment_end >= t.enrollment_start)

    class Config:
        name = "silver.members"
        unique = ["member_id"]


class CareGaps(pa.DataFrameModel):
    """silver.care_gaps: one row per gap (member x measure x year) from the latest care-gap list."""

    gap_id: str = _nonempty()
    member_id: str = pa.Field(str_matches=MEMBER_ID_PATTERN)
    measure_code: str = pa.Field(isin=list(CARE_GAP_MEASURES))
    cms_measure_id: str = pa.Field(isin=list(CARE_GAP_MEASURES.values()))
    measurement_year: dt.Int32 = pa.Field(in_range={"min_value": 2000, "max_value": 2099})
    gap_status: str = pa.Field(isin=GAP_STATUSES)
    open_date: _dt.date
    close_date: _dt.date = pa.Field(nullable=True)
    close_source: str = pa.Field(nullable=True)
    snapshot_date: _dt.date

    @pa.dataframe_check(error="cms_measure_id does not belong to measure_code")
    def measure_ids_agree(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return t.measure_code.substitute(CARE_GAP_MEASURES) == t.cms_measure_id

    @pa.dataframe_check(error="close_date is before open_date")
    def closure_not_before_opening(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return t.close_date.isnull() | (t.close_date >= t.open_date)

    # Gold decides closure by close_date alone, so a disagreeing status is worth a look, not a stop.
    @pa.dataframe_check(error="gap_status disagrees with close_date", raise_warning=True)
    def status_matches_close_date(cls, data: IbisData) -> ir.BooleanColumn:
        t = data.table
        return (t.gap_status == "CLOSED") == t.close_date.notnull()

    class Config:
        name = "silver.care_gaps"
        unique = ["gap_id"]


class RxFills(pa.DataFrameModel):
    """silver.rx_fills: one row per Part D fill of an adherence drug class."""

    fill_id: str = _nonempty()
    member_id: str = pa.Field(str_matches=MEMBER_ID_PATTERN)
    drug_class: str = pa.Field(isin=DRUG_CLASSES)
    fill_date: _dt.date
    days_supply: dt.Int32 = pa.Field(in_range={"min_value": 1, "max_value": 365})
    delivery_date: _dt.date

    class Config:
        name = "silver.rx_fills"
        unique = ["fill_id"]


CONTRACTS: dict[str, type[pa.DataFrameModel]] = {
    "outreach_events": OutreachEvents,
    "appointment_events": AppointmentEvents,
    "appointments": Appointments,
    "members": Members,
    "care_gaps": CareGaps,
    "rx_fills": RxFills,
}


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
            failures.append((_Rule(str(column), str(row.check), None, ()), 1, [f"{column}: {row.check} (found {row.failure_case})"]))
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
    if column in MEMBER_IDENTIFIER_COLUMNS:
        return mask_identifier(value)
    return mask_text(str(value))[:60]


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
    model: type[pa.DataFrameModel],
    where: Where = None,
    examples: int = EXAMPLES_PER_CHECK,
) -> RuleOutcome:
    """Validate `schema.table` against `model` inside DuckDB; failures counted by check, examples masked.

    `where` limits the rows: a delivery date or dates (on partition_date) or a function of the
    Ibis table returning a boolean filter. The table is read once for all row checks, once per
    uniqueness rule, and once per failed check for its examples; nothing else leaves the database.
    A check declared with raise_warning=True is reported under warnings_by_check and does not fail
    the outcome.
    """
    contract = model.to_schema()
    with ibis_backend(connection) as backend:
        try:
            source = backend.table(table, database=schema)
        except TableNotFound:
            return RuleOutcome(passed=False, metadata={"table": f"{schema}.{table}", "error": "table does not exist"})
        rows, scope = _scoped(source, where)

        results = _schema_failures(contract, rows)
        unusable = {r.column for r, _, _ in results if r.column in contract.columns}
        rules, errors = _rules(contract, rows, unusable)
        results += errors

        counts = rows.aggregate(
            _rows=rows.count(), **{f"_rule_{i}": rows.count(where=rule.bad) for i, rule in enumerate(rules)}
        ).to_pyarrow().to_pylist()[0]
        rows_checked = int(counts["_rows"])
        lineage = [c for c in LINEAGE_COLUMNS if c in rows.columns]
        for i, rule in enumerate(rules):
            failed = int(counts[f"_rule_{i}"])
            shown: list[str] = []
            if failed:
                picked = rows.filter(rule.bad).select(*dict.fromkeys([*rule.show, *lineage])).limit(examples)
                shown = [_example(rule, row) for row in picked.to_pyarrow().to_pylist()]
            results.append((rule, failed, shown))

        for subset in _unique_subsets(contract):
            rule = _Rule(", ".join(subset), "multiple_fields_uniqueness", None, tuple(subset))
            if set(subset) - set(rows.columns) or set(subset) & unusable:
                continue
            groups = rows.group_by(subset).aggregate(_copies=ibis._.count()).filter(ibis._._copies > 1)
            duplicated_rows = groups.aggregate(n=groups._copies.sum().fill_null(0)).to_pyarrow().to_pylist()[0]["n"]
            shown = []
            if duplicated_rows:
                for row in groups.order_by(ibis.desc("_copies")).limit(examples).to_pyarrow().to_pylist():
                    values = ", ".join(f"{c}={_show(c, row[c])}" for c in subset)
                    shown.append(f"{rule.label} ({values} x{row['_copies']})")
            results.append((rule, int(duplicated_rows), shown))

    failing = [(r, n, ex) for r, n, ex in results if n and not r.warning]
    warned = [(r, n, ex) for r, n, ex in results if n and r.warning]
    metadata: dict[str, Any] = {
        "table": f"{schema}.{table}",
        "contract": model.__name__,
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
