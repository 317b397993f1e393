"""`mmrec export`: a trained run as a Triton model repository (merlin-systems ensemble)."""

from __future__ import annotations

import argparse

from mmrec.commands import stage_command
from mmrec.config import ExportConfig
from mmrec.options import config_from


def register(sub: argparse._SubParsersAction) -> None:
    stage_command(
        sub,
        "export",
        ExportConfig,
        _export,
        help="export a trained model behind its fitted workflow as a Triton model repository",
        description="Writes <out>/triton/ (entry model: executor_model): the fitted workflow "
        "(labels removed), the pretrained-vector lookup and the model. A two-tower run exports "
        "its query tower there and every movie's embedding plus a top-k index in "
        "<out>/retrieval/.",
        example_lines=(
            "mmrec export --run dlrm",
            "mmrec export --run dlrm --backend python   # Triton builds with only the python backend",
            "mmrec export --run two-tower --etl-run random-lookup",
            "mmrec export --model-dir runs/x/model --etl-dir etl/random-lookup --out /srv/repo",
        ),
    )


def _export(args: argparse.Namespace) -> int:
    from models.export.ensemble import export

    cfg = config_from(ExportConfig, args)
    s = export(cfg)
    status = "already up to date" if s.get("skipped") else f"done in {s.get('seconds', 0)} s"
    print(f"export ({s['kind']}, {s['backend']} backend): {status} -> {s['path']}")
    print(f"  repository: {s['repository']} (models: {', '.join(s.get('models', []))})")
    print(f"  raw inputs: {', '.join(s.get('inputs', {}))}; output: {s.get('score')}")
    if "retrieval" in s:
        r = s["retrieval"]
        print(f"  retrieval: {r['items']} movies x {r['dim']} dims in {s['path']}/retrieval")
    return 0
