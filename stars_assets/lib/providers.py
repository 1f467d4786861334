"""The provider registry: one YAML file per vendor, validated before anything reaches SQL.

A provider declares how its files look (format, file pattern, delimiter, encoding), which
fields it sends (vendor names mapped to bronze column names), how its timestamps are written,
how it identifies members, and how its codes map to the canonical model. Onboarding a vendor
with a known format is a new YAML file and no Python.

Names that end up in SQL are constrained here: bronze column and table names must be plain
snake_case identifiers, and vendor field names may not contain quotes, semicolons or control
characters. A config that breaks a rule is refused with the file and the field named.
"""

from __future__ import annotations

import codecs
import fnmatch
import functools
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stars_assets import settings
from stars_assets.lib import vocabulary as v

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Vendor field names are quoted when used in SQL; refusing quotes and statement separators
# outright means a hostile or broken config cannot even attempt an injection.
SOURCE_FIELD = re.compile(r"^[A-Za-z0-9 _\-./\[\]#()=]{1,128}$")
DATE_TOKEN = "{date}"
# Key templates such as "emr_south:{appointment_id}" join bronze columns with literal text.
KEY_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
KEY_LITERAL = re.compile(r"^[A-Za-z0-9_/:.#-]*$")


class ProviderConfigError(ValueError):
    """A provider YAML that cannot be used; the message names the file and the field."""


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a snake_case identifier (a-z, 0-9, _; starts with a letter)")
    return value


# A name that reaches SQL unquoted: a bronze table or column name, a provider name.
Identifier = Annotated[str, AfterValidator(_identifier)]


def key_template_parts(template: str) -> list[tuple[str, str]]:
    """Split a key template into ("literal", text) and ("column", name) parts, validating both."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in KEY_PLACEHOLDER.finditer(template):
        parts.append(("literal", template[position : match.start()]))
        parts.append(("column", _identifier(match.group(1))))
        position = match.end()
    parts.append(("literal", template[position:]))
    parts = [p for p in parts if p != ("literal", "")]
    for kind, text in parts:
        if kind == "literal" and not KEY_LITERAL.match(text):
            raise ValueError(f"key template literal {text!r} may only use letters, digits and _ / : . # -")
    if not any(kind == "column" for kind, _ in parts):
        raise ValueError(f"key template {template!r} names no column; write columns as {{column}}")
    return parts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceColumn(_Strict):
    """A vendor field kept in bronze, as text, under a bronze column name."""

    source: str
    column: Identifier
    required: bool = True
    # Nearly every row holds a different value (a millisecond time, say): bronze stores it as unique text.
    unique: bool = False

    @field_validator("source")
    @classmethod
    def _source_is_safe(cls, value: str) -> str:
        if not SOURCE_FIELD.match(value):
            raise ValueError(f"vendor field name {value!r} has characters that are not allowed (quotes, ';', control characters)")
        return value


class Dataset(_Strict):
    """One kind of file a provider sends; it lands in table bronze.<name>."""

    name: Identifier
    file_pattern: str
    columns: tuple[SourceColumn, ...] = Field(min_length=1)

    @field_validator("file_pattern")
    @classmethod
    def _pattern_has_date(cls, value: str) -> str:
        if value.count(DATE_TOKEN) != 1 or "/" in value or ".." in value:
            raise ValueError("file_pattern must be a file name glob with exactly one {date} token (YYYYMMDD) and no folders")
        return value

    @model_validator(mode="after")
    def _unique_columns(self) -> Dataset:
        names = [c.column for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"bronze column names repeat in dataset {self.name}")
        return self

    def matches(self, file_name: str) -> date | None:
        """The delivery date a file name carries, or None when the file is not this dataset's."""
        glob = self.file_pattern.replace(DATE_TOKEN, "[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]")
        if not fnmatch.fnmatchcase(file_name, glob):
            return None
        prefix = self.file_pattern.split(DATE_TOKEN)[0]
        if any(ch in prefix for ch in "*?["):
            return None
        try:
            return datetime.strptime(file_name[len(prefix) : len(prefix) + 8], "%Y%m%d").date()
        except ValueError:
            return None

    def column(self, name: str) -> SourceColumn:
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)


class TimestampSpec(_Strict):
    """How a vendor writes an event time: which bronze columns, which format, which zone."""

    columns: tuple[str, ...] = Field(min_length=1)
    format: str  # a strptime pattern, or one of: epoch_ms, iso8601, hl7
    # The zone of local times: every strptime time, and ISO 8601 / HL7 times written without an offset.
    timezone: str = "UTC"
    # A local time the autumn daylight-saving change repeats: read as its earlier (daylight) or its
    # later (standard) instant; either way the row is flagged in audit.silver_flags.
    ambiguous: Literal["earlier", "later"] = "earlier"

    @field_validator("columns")
    @classmethod
    def _columns_are_identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_identifier(v) for v in value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class CodeMapping(_Strict):
    """A canonical field filled from a vendor column through a code table, or a constant."""

    column: str | None = None
    codes: dict[str, str] = Field(default_factory=dict)
    value: str | None = None

    @model_validator(mode="after")
    def _column_or_value(self) -> CodeMapping:
        if (self.column is None) == (self.value is None):
            raise ValueError("give either column (with codes) or a constant value")
        if self.column is not None:
            _identifier(self.column)
            if not self.codes:
                raise ValueError("a mapped column needs its codes")
        return self

    def targets(self) -> set[str]:
        return {self.value} if self.value is not None else set(self.codes.values())


def _require_canonical(mapping: CodeMapping, allowed: tuple[str, ...], field: str, kind: str) -> None:
    unknown = mapping.targets() - set(allowed)
    if unknown:
        raise ValueError(f"{field} maps to unknown {kind} {sorted(unknown)}")


class OutreachMapping(_Strict):
    """How an outreach vendor's bronze rows become canonical outreach events."""

    dataset: str
    event_key: str  # key template, e.g. "{record_id}"
    member_ref: str
    channel: CodeMapping
    event_type: CodeMapping
    event_ts: TimestampSpec
    measure_codes: str | None = None
    measure_codes_separator: str = ";"

    @model_validator(mode="after")
    def _canonical_codes(self) -> OutreachMapping:
        key_template_parts(self.event_key)
        _identifier(self.member_ref)
        if self.measure_codes is not None:
            _identifier(self.measure_codes)
        _require_canonical(self.channel, v.CHANNELS, "channel", "canonical channels")
        _require_canonical(self.event_type, v.EVENT_TYPES, "event_type", "canonical event types")
        return self


class AppointmentMapping(_Strict):
    """How an EMR's bronze rows become appointment events."""

    dataset: str
    event_key: str  # key template, e.g. "{appointment_id}/_history/{version_id}"
    appointment_key: str  # key template, source-qualified, e.g. "emr_south:{appointment_id}"
    member_ref: str
    status: CodeMapping
    event_ts: TimestampSpec
    start_ts: TimestampSpec
    booked_ts: TimestampSpec | None = None
    measure_code: str | None = None

    @model_validator(mode="after")
    def _canonical_codes(self) -> AppointmentMapping:
        key_template_parts(self.event_key)
        key_template_parts(self.appointment_key)
        _identifier(self.member_ref)
        _require_canonical(self.status, v.APPOINTMENT_STATUSES, "status", "appointment statuses")
        return self


class ProviderConfig(_Strict):
    name: Identifier
    description: str
    kind: Literal["outreach", "appointments", "warehouse"]
    format: Literal["delimited", "jsonl", "hl7v2_siu", "fhir_bundle", "parquet"]
    compression: Literal["none", "gzip"] = "none"
    delimiter: str = ","
    quote: str = ""
    encoding: Literal["utf-8"] = "utf-8"
    # What a file that is not valid UTF-8 is decoded as (flagged in the manifest), e.g. windows-1252;
    # without it only the undecodable rows are quarantined (or the file, when most of it is).
    fallback_encoding: str | None = None
    identifier_type: Literal["member_id", "mbi", "vendor_ref"] | None = None
    delivery_sla_hours: int = Field(default=36, gt=0)
    owners: tuple[str, ...] = ("team:stars-data-engineering",)
    datasets: tuple[Dataset, ...] = Field(min_length=1)
    outreach: OutreachMapping | None = None
    appointments: AppointmentMapping | None = None

    @field_validator("delimiter")
    @classmethod
    def _single_char_delimiter(cls, value: str) -> str:
        if len(value) != 1 or value in "\"'\n\r\\":
            raise ValueError("delimiter must be one character and not a quote, backslash or line break")
        return value

    @field_validator("fallback_encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError as exc:
                raise ValueError(f"unknown encoding {value!r}") from exc
        return value

    @field_validator("quote")
    @classmethod
    def _quote_char(cls, value: str) -> str:
        if value not in ("", '"', "'"):
            raise ValueError("quote must be empty, \" or '")
        return value

    @model_validator(mode="after")
    def _mappings_fit_kind(self) -> ProviderConfig:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError("dataset names repeat")
        if self.kind == "outreach" and self.outreach is None:
            raise ValueError("an outreach provider needs an outreach mapping")
        if self.kind == "appointments" and self.appointments is None:
            raise ValueError("an appointments provider needs an appointments mapping")
        if self.kind in ("outreach", "appointments") and self.identifier_type is None:
            raise ValueError("identifier_type is required for outreach and appointment providers")
        for mapping in (self.outreach, self.appointments):
            if mapping is None:
                continue
            dataset = self.dataset(mapping.dataset)
            known = {c.column for c in dataset.columns}
            for field, column in _mapped_columns(mapping):
                if column not in known:
                    raise ValueError(f"{field} refers to column {column!r}, which dataset {dataset.name} does not declare")
        return self

    def unique_columns(self, dataset: str) -> set[str]:
        """The columns of `dataset` declared unique, and those that make an event key on their own (with literals
        only): nearly every row holds a different value."""
        unique = {c.column for c in self.dataset(dataset).columns if c.unique}
        for mapping in (self.outreach, self.appointments):
            if mapping is not None and mapping.dataset == dataset:
                columns = [text for kind, text in key_template_parts(mapping.event_key) if kind == "column"]
                if len(columns) == 1:
                    unique.add(columns[0])
        return unique

    def dataset(self, name: str) -> Dataset:
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise ValueError(f"no dataset named {name!r}")


def _mapped_columns(mapping: OutreachMapping | AppointmentMapping):
    for field, value in mapping:
        if field in ("event_key", "appointment_key"):
            for kind, column in key_template_parts(value):
                if kind == "column":
                    yield field, column
        elif isinstance(value, str) and field not in ("dataset", "measure_codes_separator"):
            yield field, value
        elif isinstance(value, CodeMapping) and value.column:
            yield f"{field}.column", value.column
        elif isinstance(value, TimestampSpec):
            for column in value.columns:
                yield f"{field}.columns", column


def load_provider(path: Path) -> ProviderConfig:
    """Read and validate one provider YAML; errors name the file and the field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProviderConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProviderConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = ProviderConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors())
        raise ProviderConfigError(f"{path}: {problems}") from exc
    if config.name != Path(path).stem:
        raise ProviderConfigError(f"{path}: name: {config.name!r} must equal the file name {Path(path).stem!r}")
    return config


def load_registry(directory: Path | None = None) -> tuple[ProviderConfig, ...]:
    """Every provider YAML in the folder, sorted by name; parsed once per process and folder."""
    return _load_folder(Path(directory or settings.providers_dir()).resolve())


@functools.cache
def _load_folder(folder: Path) -> tuple[ProviderConfig, ...]:
    return tuple(load_provider(p) for p in sorted(folder.glob("*.yaml")))
