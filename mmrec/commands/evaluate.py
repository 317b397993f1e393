"""`mmrec evaluate`: metrics of trained runs beside baselines on the same split."""

from __future__ import annotations

import argparse

from mmrec.commands import stage_command
from mmrec.config import EvaluateConfig
from mmrec.options import config_from


def register(sub: argparse._SubParsersAction) -> None:
    stage_command(
        sub,
        "evaluate",
        EvaluateConfig,
        _evaluate,
        help="score trained runs (reloaded) and the baselines on their validation split",
        example_lines=(
            "mmrec evaluate --dataset synthetic",
            "mmrec evaluate --dataset ml-latest-small --run random-lookup.dlrm.none.none",
            "mmrec evaluate --dataset synthetic --etl-run cold-items-lookup --force",
        ),
    )


def _evaluate(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate

    summary = evaluate(config_from(EvaluateConfig, args))
    for etl_run, path in summary["evaluations"].items():
        print(f"{etl_run}: {path}")
    return 0
