"""`mmrec report`: markdown tables and PNG plots from `mmrec evaluate`'s JSON."""

from __future__ import annotations

import argparse

from mmrec.commands import RAW, add_data_dir, add_force, examples
from mmrec.config import ReportConfig
from mmrec.options import add_options, config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a markdown report with training curves and the modality ablation chart",
        formatter_class=RAW,
        epilog=examples(
            "mmrec report --dataset synthetic",
            "mmrec report --dataset ml-latest-small --out /tmp/report",
        ),
    )
    add_options(p, ReportConfig)
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from models.report import report

    summary = report(config_from(ReportConfig, args))
    print(f"report: {summary['markdown']} ({len(summary['plots'])} plots)")
    return 0
