"""`mmrec train`: fit a DLRM or two-tower model on an ETL run."""

from __future__ import annotations

import argparse
import json

from mmrec.commands import stage_command
from mmrec.config import TrainConfig
from mmrec.options import config_from


def register(sub: argparse._SubParsersAction) -> None:
    stage_command(
        sub,
        "train",
        TrainConfig,
        _train,
        help="train a DLRM (ranking) or two-tower (retrieval) model on an ETL run",
        example_lines=(
            "mmrec train --dataset synthetic --model dlrm --modalities text,image",
            "mmrec train --dataset synthetic --model dlrm --modalities text,image --control shuffled",
            "mmrec train --dataset ml-latest-small --model two-tower --modalities none",
            "mmrec train --dataset ml-25m --model dlrm --etl-run random-lookup --batch-size 16384",
        ),
        note="\n\nUnset hyper-parameters take per-size defaults (models/tasks.py, per kind of model)."
        "\nData-parallel: `horovodrun -np N mmrec train ...` (docs/scaling.md).",
    )


def _train(args: argparse.Namespace) -> int:
    from models.inputs import parse_modalities
    from models.train import train_seeds

    cfg = config_from(TrainConfig, args, modalities=parse_modalities(args.modalities))
    for summary in train_seeds(cfg):
        if summary.get("rank"):  # Horovod: rank 0 alone reports
            continue
        status = "already trained" if summary.get("skipped") else "done"
        print(f"{summary['run']}: {status} -> {summary['path']}")
        print(json.dumps(summary["metrics"], indent=1))
    return 0
