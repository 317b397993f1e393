"""`mmrec evaluate`: metrics of trained runs beside baselines on the same split."""

from __future__ import annotations

import argparse

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples


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
    p.add_argument("--dataset", required=True, help="dataset folder under --data-dir")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        help="a run under <root>/runs/ (repeatable; default all)",
    )
    p.add_argument("--etl-run", default=None, help="only runs trained on this ETL run")
    p.add_argument(
        "--baseline-strength",
        type=float,
        default=5.0,
        help="pseudo-ratings that pull per-user / per-movie positive rates to the global rate",
    )
    p.add_argument(
        "--bootstrap-samples",
        type=int,
        default=1000,
        help="paired bootstrap draws over users for every interval (default 1000)",
    )
    p.add_argument(
        "--bootstrap-seed", type=int, default=0, help="seed of the bootstrap draws (default 0)"
    )
    p.add_argument(
        "--no-strong-baselines",
        dest="strong_baselines",
        action="store_false",
        help="skip LightGBM, EASE and content kNN (keep rates, popularity and random)",
    )
    p.add_argument(
        "--ease-max-items",
        type=int,
        default=16_000,
        help="EASE inverts an items x items matrix: above this many movies it fits the most-rated"
        " ones only (default 16000, about 6 GB)",
    )
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from mmrec.config import EvaluateConfig
    from models.evaluate import evaluate

    summary = evaluate(
        EvaluateConfig(
            dataset=args.dataset,
            data_dir=data_dir_of(args),
            runs=tuple(args.run),
            etl_run=args.etl_run,
            baseline_strength=args.baseline_strength,
            bootstrap_samples=args.bootstrap_samples,
            bootstrap_seed=args.bootstrap_seed,
            strong_baselines=args.strong_baselines,
            ease_max_items=args.ease_max_items,
            force=args.force,
        )
    )
    for etl_run, path in summary["evaluations"].items():
        print(f"{etl_run}: {path}")
    return 0
