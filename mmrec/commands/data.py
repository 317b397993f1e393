"""`mmrec data`: download real MovieLens, generate the synthetic default, write an archive."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.commands import data_dir_of, stage_command
from mmrec.config import DownloadConfig, SyntheticConfig
from mmrec.options import config_from
from workflows.data.variants import VARIANTS  # the table of names only: no heavy imports


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="get a dataset: real MovieLens or the synthetic default")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    stage_command(
        dsub,
        "download",
        DownloadConfig,
        _download,
        overrides={"variant": {"choices": tuple(VARIANTS)}},
        help="download a GroupLens MovieLens archive, verify it, convert it to typed Parquet",
        example_lines=(
            "mmrec data download ml-latest-small",
            "mmrec data download ml-25m --data-dir /data",
            "mmrec data download ml-latest-small --base-url http://127.0.0.1:8000/",
            "mmrec data download ml-1m --checksum md5:c4d9eecfca2ab87c1945afe126590906",
        ),
    )

    stage_command(
        dsub,
        "synthetic",
        SyntheticConfig,
        _synthetic,
        help="generate a MovieLens-format dataset with posters, synopses and a planted signal",
        example_lines=(
            "mmrec data synthetic",
            "mmrec data synthetic --users 500 --movies 300 --ratings 20000 --seed 1",
            "mmrec data synthetic --name synth-25m --users 162541 --movies 62423 \\\n"
            "      --ratings 25000095 --no-posters",
            "mmrec data synthetic --name hard --topics 12 --content-noise 1.5 --rating-noise 1.0",
        ),
    )

    a = stage_command(
        dsub,
        "archive",
        None,
        _archive,
        force=False,
        help="write a dataset as a GroupLens-style zip (ml-25m CSV layout) with its .md5",
        example_lines=("mmrec data archive --dataset synthetic --out /tmp/serve/ml-25m.zip",),
    )
    a.add_argument("--dataset", default="synthetic", help="dataset folder to pack")
    a.add_argument("--out", type=Path, required=True, help="zip file to write")
    a.add_argument(
        "--folder", default=None, help="top folder inside the zip (default: the zip's stem)"
    )


def _download(args: argparse.Namespace) -> int:
    from workflows.data.download import download_dataset

    cfg = config_from(DownloadConfig, args)
    manifest = download_dataset(cfg)
    _print_counts(manifest)
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    from workflows.data.synthetic import generate_synthetic

    corrupt = {} if args.posters else {"corrupt_poster_rate": 0.0}
    cfg = config_from(SyntheticConfig, args, **corrupt)
    manifest = generate_synthetic(cfg)
    _print_counts(manifest)
    return 0


def _archive(args: argparse.Namespace) -> int:
    from mmrec.paths import DatasetPaths
    from workflows.data.archive import write_archive

    paths = DatasetPaths.of(data_dir_of(args), args.dataset)
    out = write_archive(paths, args.out, folder=args.folder)
    print(f"wrote {out} and {out}.md5")
    return 0


def _print_counts(manifest: dict) -> None:
    counts = manifest.get("row_counts", {})
    where = manifest.get("path", "")
    status = "already up to date" if manifest.get("skipped") else "done"
    parts = ", ".join(f"{k}: {v:,}" for k, v in counts.items())
    print(f"{manifest.get('dataset', '')}: {status} -> {where} ({parts})")
