"""`mmrec report`: markdown tables and PNG plots from `mmrec evaluate`'s JSON."""

from __future__ import annotations

import argparse

from mmrec.commands import stage_command
from mmrec.config import ReportConfig
from mmrec.options import config_from


def register(sub: argparse._SubParsersAction) -> None:
    stage_command(
        sub,
        "report",
        ReportConfig,
        _report,
        help="write a markdown report with training curves and the modality ablation chart",
        example_lines=(
            "mmrec report --dataset synthetic",
            "mmrec report --dataset ml-latest-small --out /tmp/report",
        ),
    )


def _report(args: argparse.Namespace) -> int:
    from models.report import report

    summary = report(config_from(ReportConfig, args))
    print(f"report: {summary['markdown']} ({len(summary['plots'])} plots)")
    return 0
