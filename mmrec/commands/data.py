"""`mmrec data`: download real MovieLens, generate the synthetic default, write an archive."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import GROUPLENS_BASE_URL, DownloadConfig, SyntheticConfig
from workflows.data.variants import VARIANTS  # the table of names only: no heavy imports


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="get a dataset: real MovieLens or the synthetic default")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    d = dsub.add_parser(
        "download",
        help="download a GroupLens MovieLens archive, verify it, convert it to typed Parquet",
        formatter_class=RAW,
        epilog=examples(
            "mmrec data download ml-latest-small",
            "mmrec data download ml-25m --data-dir /data",
            "mmrec data download ml-latest-small --base-url http://127.0.0.1:8000/",
            "mmrec data download ml-1m --checksum md5:c4d9eecfca2ab87c1945afe126590906",
        ),
    )
    d.add_argument("variant", choices=tuple(VARIANTS))
    d.add_argument(
        "--base-url",
        default=GROUPLENS_BASE_URL,
        help="replaces the GroupLens prefix (a mirror, or a local server)",
    )
    d.add_argument(
        "--checksum",
        default=None,
        help="md5:HEX or sha256:HEX; default: the .md5 file published beside the archive",
    )
    d.add_argument("--timeout", type=float, default=60.0, help="seconds per network read")
    d.add_argument("--retries", type=int, default=5, help="attempts per request")
    add_data_dir(d)
    add_force(d)
    d.set_defaults(func=_download)

    s = dsub.add_parser(
        "synthetic",
        help="generate a MovieLens-format dataset with posters, synopses and a planted signal",
        formatter_class=RAW,
        epilog=examples(
            "mmrec data synthetic",
            "mmrec data synthetic --users 500 --movies 300 --ratings 20000 --seed 1",
            "mmrec data synthetic --name synth-25m --users 162541 --movies 62423 \\\n"
            "      --ratings 25000095 --no-posters",
            "mmrec data synthetic --name hard --topics 12 --content-noise 1.5 --rating-noise 1.0",
        ),
    )
    defaults = SyntheticConfig(data_dir=Path("."))
    s.add_argument("--name", default=defaults.name, help="dataset folder name")
    s.add_argument("--users", type=int, default=defaults.users)
    s.add_argument("--movies", type=int, default=defaults.movies)
    s.add_argument("--ratings", type=int, default=defaults.ratings)
    s.add_argument("--seed", type=int, default=defaults.seed)
    s.add_argument("--missing-poster-rate", type=float, default=defaults.missing_poster_rate)
    s.add_argument("--missing-synopsis-rate", type=float, default=defaults.missing_synopsis_rate)
    s.add_argument("--corrupt-poster-rate", type=float, default=defaults.corrupt_poster_rate)
    s.add_argument("--topics", type=int, default=defaults.n_topics, help="latent topics (1-12)")
    s.add_argument(
        "--factors", type=int, default=defaults.n_factors, help="latent factors per movie/user"
    )
    s.add_argument(
        "--rating-noise",
        type=float,
        default=defaults.rating_noise,
        help="std of the noise on the latent rating score",
    )
    s.add_argument(
        "--content-noise",
        type=float,
        default=defaults.content_noise,
        help="how loosely posters and synopses follow the latent factors",
    )
    s.add_argument(
        "--no-posters",
        action="store_true",
        help="skip poster images (large benchmark datasets that only need ratings)",
    )
    add_data_dir(s)
    add_force(s)
    s.set_defaults(func=_synthetic)

    a = dsub.add_parser(
        "archive",
        help="write a dataset as a GroupLens-style zip (ml-25m CSV layout) with its .md5",
        formatter_class=RAW,
        epilog=examples(
            "mmrec data archive --dataset synthetic --out /tmp/serve/ml-25m.zip",
        ),
    )
    a.add_argument("--dataset", default="synthetic", help="dataset folder to pack")
    a.add_argument("--out", type=Path, required=True, help="zip file to write")
    a.add_argument(
        "--folder", default=None, help="top folder inside the zip (default: the zip's stem)"
    )
    add_data_dir(a)
    a.set_defaults(func=_archive)


def _download(args: argparse.Namespace) -> int:
    from workflows.data.download import download_dataset

    cfg = DownloadConfig(
        variant=args.variant,
        data_dir=data_dir_of(args),
        base_url=args.base_url,
        checksum=args.checksum,
        force=args.force,
        timeout_s=args.timeout,
        retries=args.retries,
    )
    manifest = download_dataset(cfg)
    _print_counts(manifest)
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    from workflows.data.synthetic import generate_synthetic

    cfg = SyntheticConfig(
        data_dir=data_dir_of(args),
        name=args.name,
        users=args.users,
        movies=args.movies,
        ratings=args.ratings,
        seed=args.seed,
        missing_poster_rate=args.missing_poster_rate,
        missing_synopsis_rate=args.missing_synopsis_rate,
        corrupt_poster_rate=0.0 if args.no_posters else args.corrupt_poster_rate,
        n_topics=args.topics,
        n_factors=args.factors,
        rating_noise=args.rating_noise,
        content_noise=args.content_noise,
        posters=not args.no_posters,
        force=args.force,
    )
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
