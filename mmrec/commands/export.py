"""`mmrec export`: a trained run as a Triton model repository (merlin-systems ensemble)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import ExportConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model behind its fitted workflow as a Triton model repository",
        formatter_class=RAW,
        description="Writes <out>/triton/ (entry model: executor_model): the fitted workflow "
        "(labels removed), the pretrained-vector lookup and the model. A two-tower run exports "
        "its query tower there and every movie's embedding plus a top-k index in "
        "<out>/retrieval/.",
        epilog=examples(
            "mmrec export --run dlrm",
            "mmrec export --run dlrm --backend python   # Triton builds with only the python backend",
            "mmrec export --run two-tower --etl-run random-lookup",
            "mmrec export --model-dir runs/x/model --etl-dir etl/random-lookup --out /srv/repo",
        ),
    )
    defaults = ExportConfig(dataset="", data_dir=Path("."))
    p.add_argument("--dataset", default="synthetic", help="dataset folder (default: synthetic)")
    p.add_argument("--run", default=None, help="training run under <dataset>/runs/")
    p.add_argument("--etl-run", default=None, help="ETL run (default: the one the run names)")
    p.add_argument(
        "--model", default=defaults.model, choices=("auto", "dlrm", "two-tower"), help="model kind"
    )
    p.add_argument(
        "--backend",
        default=defaults.backend,
        choices=("tensorflow", "python"),
        help="tensorflow: platform tensorflow_savedmodel (Merlin image); python: the SavedModel "
        "in a python-backend model (tritonserver with only the python backend)",
    )
    p.add_argument("--model-dir", type=Path, default=None, help="a SavedModel instead of the run's")
    p.add_argument("--etl-dir", type=Path, default=None, help="an ETL folder instead of the run's")
    p.add_argument("--movies", type=Path, default=None, help="two-tower item catalogue")
    p.add_argument("--out", type=Path, default=None, help="default: <dataset>/export/<run>")
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=defaults.max_batch_size,
        help="rows per request; larger requests get an error",
    )
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from models.export.ensemble import export

    cfg = ExportConfig(
        dataset=args.dataset,
        data_dir=data_dir_of(args),
        run=args.run,
        etl_run=args.etl_run,
        model=args.model,
        model_dir=args.model_dir,
        etl_dir=args.etl_dir,
        movies=args.movies,
        backend=args.backend,
        out=args.out,
        max_batch_size=args.max_batch_size,
        force=args.force,
    )
    s = export(cfg)
    status = "already up to date" if s.get("skipped") else f"done in {s.get('seconds', 0)} s"
    print(f"export ({s['kind']}, {s['backend']} backend): {status} -> {s['path']}")
    print(f"  repository: {s['repository']} (models: {', '.join(s.get('models', []))})")
    print(f"  raw inputs: {', '.join(s.get('inputs', {}))}; output: {s.get('score')}")
    if "retrieval" in s:
        r = s["retrieval"]
        print(f"  retrieval: {r['items']} movies x {r['dim']} dims in {s['path']}/retrieval")
    return 0
