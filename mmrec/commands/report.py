"""`mmrec report`: markdown tables and PNG plots from `mmrec evaluate`'s JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples


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
    p.add_argument("--dataset", required=True, help="dataset folder under --data-dir")
    p.add_argument("--out", type=Path, default=None, help="default <root>/report/")
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from mmrec.config import ReportConfig
    from models.report import report

    summary = report(
        ReportConfig(
            dataset=args.dataset, data_dir=data_dir_of(args), out=args.out, force=args.force
        )
    )
    print(f"report: {summary['markdown']} ({len(summary['plots'])} plots)")
    return 0
