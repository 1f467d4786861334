"""stars-predict: the Star Rating distribution, expected rating, P(4+) and top two levers for one set of inputs.

    stars-predict --hedis 72 --cahps 3.6 --adherence 86 --readmission 14 [--model seed|fitted] [--json]

--model fitted reads the parameters the `model/star_rating_model` asset stored in the warehouse
(table model.star_rating_model); when that table is not there (or not readable), it fits the model on the
CMS 2026 tables shipped in data/reference (a few hundred contracts, well under a second).
Invalid inputs print an error on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

import duckdb

from stars_assets import settings
from stars_assets.lib.cms import tables
from stars_assets.lib.ordinal import (
    INPUTS,
    SEED,
    InputError,
    OrdinalParams,
    fit,
    format_level,
    levers,
    predict,
    training_set,
    validate_inputs,
)
from stars_assets.lib.ordinal.features import TRAINING_STAR_YEAR

MODEL_TABLE = "model.star_rating_model"


def fitted_params() -> tuple[OrdinalParams, str]:
    """The fitted parameter set and where it came from."""
    warehouse = settings.warehouse_path()
    if warehouse.exists():
        try:
            with duckdb.connect(str(warehouse), read_only=True) as connection:
                table = connection.execute(f"select * from {MODEL_TABLE}").df()
            return OrdinalParams.from_parameter_table(table), f"warehouse table {MODEL_TABLE}"
        except duckdb.Error:
            pass  # not materialized yet, or another process holds the write lock: fit instead
    return fitted_on_reference()


def fitted_on_reference() -> tuple[OrdinalParams, str]:
    """The model fitted now on the CMS tables shipped in data/reference, and where it came from."""
    year_dir = settings.cms_reference_dir(TRAINING_STAR_YEAR)
    training = training_set(tables.measure_scores(year_dir), tables.measure_stars(year_dir), tables.summary_ratings(year_dir))
    return fit(training.frame).params, f"fitted now on the CMS {TRAINING_STAR_YEAR} tables in {year_dir}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stars-predict", description=__doc__.split("\n")[0])
    for spec in INPUTS:
        parser.add_argument(
            f"--{spec.name}",
            type=float,
            required=True,
            metavar=spec.unit.upper(),
            help=f"{spec.label}, {spec.low:g}..{spec.high:g} {spec.unit}",
        )
    parser.add_argument("--model", choices=("seed", "fitted"), default="seed", help="parameter set (default: seed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def prediction_report(params: OrdinalParams, inputs: dict[str, float]) -> dict:
    prediction = predict(params, inputs)
    top_levers = levers(params, inputs)
    return {
        "model": params.name,
        "inputs": inputs,
        "probabilities": {format_level(level): float(p) for level, p in prediction.probabilities.iloc[0].items()},
        "expected_stars": float(prediction.expected_stars.iloc[0]),
        "p_four_plus": float(prediction.p_four_plus.iloc[0]),
        "levers": [
            {
                "input": row.input,
                "step": float(row.step),
                "applied_step": float(row.applied_step),
                "capped": bool(row.capped),
                "gain": float(row.gain),
            }
            for row in top_levers.itertuples()
        ],
    }


def render_text(report: dict) -> str:
    specs = {spec.name: spec for spec in INPUTS}
    lines = [f"Star Rating prediction, model: {report['model']} ({report['model_source']})", ""]
    lines += ["  stars  probability"]
    lines += [f"  {level:>5}  {p:11.1%}" for level, p in report["probabilities"].items()]
    lines += [
        "",
        f"  expected rating   {report['expected_stars']:.2f} stars",
        f"  P(4+ stars)       {report['p_four_plus']:.1%}",
        "",
    ]
    lines += ["  top levers (gain in expected stars)"]
    for rank, lever in enumerate(report["levers"], start=1):
        spec = specs[lever["input"]]
        capped = f", capped to {lever['applied_step']:+g} by the valid range" if lever["capped"] else ""
        lines.append(f"  {rank}. {spec.label} {spec.describe_step()}{capped}: {lever['gain']:+.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    inputs = {spec.name: getattr(args, spec.name) for spec in INPUTS}
    try:
        validate_inputs(SEED, inputs)  # both parameter sets share the inputs and their valid ranges
    except InputError as error:
        parser.error(str(error))  # exits with status 2
    params, source = (SEED, "STARS.md reference calibration") if args.model == "seed" else fitted_params()
    report = prediction_report(params, inputs) | {"model_source": source}
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
