"""`mmrec evaluate`: metrics of trained runs beside baselines on the same split."""

from __future__ import annotations

import argparse

from mmrec.commands import RAW, add_data_dir, add_force, examples
from mmrec.config import EvaluateConfig
from mmrec.options import add_options, config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score trained runs (reloaded) and the baselines on their validation split",
        formatter_class=RAW,
        epilog=examples(
            "mmrec evaluate --dataset synthetic",
            "mmrec evaluate --dataset ml-latest-small --run random-lookup.dlrm.none.none",
            "mmrec evaluate --dataset synthetic --etl-run cold-items-lookup --force",
        ),
    )
    add_options(p, EvaluateConfig)
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate

    summary = evaluate(config_from(EvaluateConfig, args))
    for etl_run, path in summary["evaluations"].items():
        print(f"{etl_run}: {path}")
    return 0
