"""The provider registry: shipped YAML loads, broken YAML is refused naming the file and the field."""

from datetime import date
from pathlib import Path

import pytest
import yaml

from stars_assets.lib.providers import ProviderConfigError, load_provider, load_registry

SHIPPED = Path(__file__).resolve().parent.parent / "stars_assets" / "providers"


def test_shipped_registry_has_the_six_vendors():
    providers = {p.name: p for p in load_registry(SHIPPED)}
    assert sorted(providers) == ["dialer", "edw", "emr_north", "emr_south", "engage", "ihwa"]
    assert {p.format for p in providers.values()} == {"delimited", "jsonl", "hl7v2_siu", "fhir_bundle", "parquet"}
    assert providers["engage"].outreach.event_type.codes["opted_out"] == "OPTED_OUT"


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("IHWA_ASSESSMENTS_20261001.txt", date(2026, 10, 1)),
        ("IHWA_ASSESSMENTS_20261001_02.txt", date(2026, 10, 1)),
        ("IHWA_ASSESSMENTS_2026100.txt", None),
        ("IHWA_ASSESSMENTS_20261301.txt", None),
        ("ihwa_assessments_20261001.txt", None),
        ("dialer_calls_20261001.csv", None),
    ],
)
def test_file_names_carry_the_delivery_date(file_name, expected):
    ihwa = load_provider(SHIPPED / "ihwa.yaml")
    assert ihwa.datasets[0].matches(file_name) == expected


def _write_variant(tmp_path: Path, edit) -> Path:
    config = yaml.safe_load((SHIPPED / "dialer.yaml").read_text())
    edit(config)
    path = tmp_path / "dialer.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda c: c.update(format="xlsx"), "format", "delimited"),
        (lambda c: c.pop("outreach"), "(top level)", "outreach mapping"),
        (
            lambda c: c["datasets"][0]["columns"][0].update(source='Call ID"; DROP TABLE x; --'),
            "datasets.0.columns.0.source",
            "not allowed",
        ),
        (lambda c: c["datasets"][0]["columns"][0].update(column="call id;"), "datasets.0.columns.0.column", "identifier"),
        (lambda c: c["outreach"]["event_type"].update(column="no_such_column"), "(top level)", "no_such_column"),
        (lambda c: c["outreach"]["event_type"]["codes"].update(CONNECTED="HAPPY"), "outreach", "HAPPY"),
        (lambda c: c["outreach"]["event_ts"].update(timezone="Mars/Olympus"), "outreach.event_ts.timezone", "time zone"),
        (lambda c: c["outreach"].update(event_key="{call_id}'||x"), "outreach", "key template"),
        (lambda c: c["datasets"][0].update(file_pattern="../dialer_*.csv"), "datasets.0.file_pattern", "{date}"),
        (lambda c: c.update(delimiter=";;"), "delimiter", "one character"),
    ],
)
def test_invalid_config_is_refused_naming_file_and_field(tmp_path, edit, field, words):
    path = _write_variant(tmp_path, edit)
    with pytest.raises(ProviderConfigError) as error:
        load_provider(path)
    message = str(error.value)
    assert str(path) in message
    assert field in message
    assert words in message


def test_name_must_match_file(tmp_path):
    path = _write_variant(tmp_path, lambda c: c.update(name="other"))
    with pytest.raises(ProviderConfigError, match="must equal the file name"):
        load_provider(path)


def test_unreadable_yaml_is_refused(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ProviderConfigError, match="broken.yaml: cannot read YAML"):
        load_provider(path)
