"""`mmrec run`: the main job, every stage in order, resumable."""

from __future__ import annotations

import argparse

from mmrec.commands import data_dir_of, stage_command
from mmrec.config import RUN_PASS_THROUGH, STAGE_CONFIGS, RunConfig, SyntheticConfig, opt_of
from mmrec.options import add_option, add_options, config_from, parse_value

SYNTHETIC_SIZES = ("users", "movies", "ratings", "seed")


def register(sub: argparse._SubParsersAction) -> None:
    p = stage_command(
        sub,
        "run",
        None,
        _run,
        help="run the whole pipeline on a dataset (default: the embedded synthetic one)",
        description="Runs every stage in order. Interrupted? Run the same command again: "
        "finished steps are skipped. The stage options below are passed to that stage only "
        "when given (see `mmrec STAGE --help`).",
        example_lines=(
            "mmrec run",
            "mmrec run --data-dir /data",
            "mmrec run --dataset ml-latest-small --source tmdb",
            "mmrec run --dataset ml-1m --source local --images posters/ --texts plots.csv "
            "--key imdbId",
            "mmrec run --device gpu --features-batch-size 128 --epochs 5 --train-seed 1",
        ),
    )
    add_options(p, RunConfig, ["dataset", "source"])
    add_options(p, SyntheticConfig, SYNTHETIC_SIZES)
    add_options(
        p,
        RunConfig,
        [
            "split",
            "embeddings",
            "modalities",
            "image_model",
            "text_model",
            "pca",
            "seeds",
            "export",
        ],
    )
    stages = p.add_argument_group("stage options")
    for flag, targets in RUN_PASS_THROUGH.items():
        stage, name = targets[0]
        spec = opt_of(STAGE_CONFIGS[stage], name)
        where = " and ".join(s for s, _ in targets)
        add_option(
            stages,
            STAGE_CONFIGS[stage],
            name,
            flag=flag,
            dest=_dest(flag),
            cli_default=None,
            help=f"{where}: {spec.help}" if spec.help else where,
            metavar=None if spec.choices else flag.lstrip("-").replace("-", "_").upper(),
        )


def _dest(flag: str) -> str:
    return "stage_" + flag.lstrip("-").replace("-", "_")


def _stage_options(args: argparse.Namespace) -> dict[str, dict]:
    """The pass-through flags that were given, as {stage: {field: value}}."""
    out: dict[str, dict] = {}
    for flag, targets in RUN_PASS_THROUGH.items():
        raw = getattr(args, _dest(flag))
        if raw is None:
            continue
        for stage, name in targets:
            out.setdefault(stage, {})[name] = parse_value(STAGE_CONFIGS[stage], name, raw)
    return out


def _run(args: argparse.Namespace) -> int:
    from mmrec.pipeline import format_summary, run_pipeline

    data_dir = data_dir_of(args)
    sizes = {k: getattr(args, k) for k in SYNTHETIC_SIZES}
    synthetic = SyntheticConfig(data_dir=data_dir, name=args.dataset, **sizes)
    cfg = config_from(RunConfig, args, synthetic=synthetic, stage_options=_stage_options(args))
    print(format_summary(run_pipeline(cfg)))
    return 0
