"""`mmrec run`: the main job, every stage in order, resumable."""

from __future__ import annotations

import argparse

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import RunConfig, SyntheticConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole pipeline on a dataset (default: the embedded synthetic one)",
        formatter_class=RAW,
        description="Runs every stage in order. Interrupted? Run the same command again: "
        "finished steps are skipped.",
        epilog=examples(
            "mmrec run",
            "mmrec run --data-dir /data",
            "mmrec run --dataset ml-latest-small --source tmdb",
        ),
    )
    p.add_argument(
        "--dataset", default="synthetic", help="synthetic (default) or a MovieLens variant"
    )
    p.add_argument(
        "--source", default=None, help="enrich source for real MovieLens: tmdb|imdb|local"
    )
    syn = SyntheticConfig(data_dir=None)  # type: ignore[arg-type]
    p.add_argument("--users", type=int, default=syn.users, help="synthetic users")
    p.add_argument("--movies", type=int, default=syn.movies, help="synthetic movies")
    p.add_argument("--ratings", type=int, default=syn.ratings, help="synthetic ratings")
    p.add_argument("--seed", type=int, default=syn.seed)
    p.add_argument(
        "--split",
        choices=("random", "temporal", "cold-items"),
        default=None,
        help="default: cold-items on synthetic data, random on MovieLens",
    )
    p.add_argument("--embeddings", choices=("join", "lookup"), default="lookup")
    p.add_argument("--image-model", default=None, help="default: resnet18 (synthetic), resnet50")
    p.add_argument(
        "--text-model", default=None, help="default: minilm (synthetic), facebook/bart-large"
    )
    p.add_argument(
        "--pca", default=RunConfig(data_dir=None).pca, help='per modality; "" keeps all dims'
    )  # type: ignore[arg-type]
    p.add_argument(
        "--seeds",
        type=int,
        default=RunConfig(data_dir=None).seeds,  # type: ignore[arg-type]
        help="train every configuration with this many seeds (42, 43, ...); the report averages"
        " them and gives each gain an interval (default 1)",
    )
    p.add_argument("--no-export", action="store_true", help="stop after the report")
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mmrec.pipeline import format_summary, run_pipeline

    data_dir = data_dir_of(args)
    cfg = RunConfig(
        data_dir=data_dir,
        dataset=args.dataset,
        source=args.source,
        synthetic=SyntheticConfig(
            data_dir=data_dir,
            name=args.dataset,
            users=args.users,
            movies=args.movies,
            ratings=args.ratings,
            seed=args.seed,
        ),
        split=args.split,
        embeddings=args.embeddings,
        image_model=args.image_model,
        text_model=args.text_model,
        pca=args.pca,
        seeds=args.seeds,
        export=not args.no_export,
        force=args.force,
    )
    print(format_summary(run_pipeline(cfg)))
    return 0
