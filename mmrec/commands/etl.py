"""`mmrec etl`: split ratings, fit the NVTabular workflow on train, write model inputs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mmrec.commands import RAW, add_data_dir, add_force, data_dir_of, examples
from mmrec.config import EtlConfig


def register(sub: argparse._SubParsersAction) -> None:
    d = EtlConfig(dataset="", data_dir=Path("."))
    p = sub.add_parser(
        "etl",
        help="NVTabular ETL: split, encode, label, attach item embeddings (CPU or GPU, Dask)",
        description=(
            "Read ratings.parquet, movies.parquet and (if present) feature_store.parquet of a "
            "dataset; drop and count bad rows; split; fit an NVTabular workflow on train; write "
            "<dataset>/etl/<run-name>/ (train/, valid/, workflow/, categories/, embeddings/, "
            "summary.json). Reruns are no-ops unless --force."
        ),
        formatter_class=RAW,
        epilog=examples(
            "mmrec etl --dataset ml-latest-small",
            "mmrec etl --dataset synthetic --split cold-items --cold-fraction 0.1",
            "mmrec etl --dataset ml-25m --split temporal --temporal-mode leave-last-out",
            "mmrec etl --dataset synthetic --embeddings join --modalities image,text",
            "mmrec etl --dataset ml-25m --device gpu --workers 2 --part-size 1GB",
            "mmrec etl --dataset ml-25m --scheduler tcp://10.0.0.5:8786",
            "mmrec etl --dataset synthetic --partitions 4   # for horovodrun -np 4 mmrec train",
        ),
    )
    p.add_argument("--dataset", required=True, help="dataset folder under the data dir")
    p.add_argument(
        "--run-name", default=None, help="output folder name (default: SPLIT-EMBEDDINGS)"
    )
    p.add_argument("--split", choices=("random", "temporal", "cold-items"), default=d.split)
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=d.valid_fraction,
        help="random: valid share; temporal global: share after the cut; cold-items: of warm rows",
    )
    p.add_argument("--temporal-mode", choices=("global", "leave-last-out"), default=d.temporal_mode)
    p.add_argument(
        "--cold-fraction",
        type=float,
        default=d.cold_fraction,
        help="cold-items: share of rated movies held out of train",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--embeddings",
        choices=("lookup", "join", "none"),
        default=d.embeddings,
        help="lookup: id-aligned matrices gathered per batch; join: vectors written per row",
    )
    p.add_argument(
        "--modalities", default=None, help="comma-separated (default: all in the feature store)"
    )
    p.add_argument(
        "--rating-threshold",
        type=float,
        default=d.rating_threshold,
        help="rating_binary = rating > this",
    )
    p.add_argument("--no-rating", action="store_true", help="drop the raw rating target")
    p.add_argument("--count-features", action="store_true", help="user/item train counts")
    p.add_argument(
        "--target-encoding", action="store_true", help="k-fold target encoding of user and item"
    )
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default=d.device)
    p.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="local Dask workers (GPUs on gpu); 0: one process",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="address of an existing Dask scheduler (its workers must see --data-dir)",
    )
    p.add_argument("--part-size", default=d.part_size, help="NVTabular partition size, e.g. 256MB")
    p.add_argument(
        "--partitions",
        type=int,
        default=d.partitions,
        help="write train/ and valid/ as N equal files, for N Horovod ranks (or N/k ranks)",
    )
    add_data_dir(p)
    add_force(p)
    p.set_defaults(func=_etl)


def _etl(args: argparse.Namespace) -> int:
    skip_tensorflow()
    from workflows.etl.stage import run_etl

    modalities = (
        tuple(m.strip() for m in args.modalities.split(",") if m.strip())
        if args.modalities
        else None
    )
    cfg = EtlConfig(
        dataset=args.dataset,
        data_dir=data_dir_of(args),
        run_name=args.run_name,
        split=args.split,
        valid_fraction=args.valid_fraction,
        temporal_mode=args.temporal_mode,
        cold_fraction=args.cold_fraction,
        seed=args.seed,
        embeddings=args.embeddings,
        modalities=modalities,
        rating_threshold=args.rating_threshold,
        keep_rating=not args.no_rating,
        count_features=args.count_features,
        target_encoding=args.target_encoding,
        device=args.device,
        workers=args.workers,
        scheduler=args.scheduler,
        part_size=args.part_size,
        partitions=args.partitions,
        force=args.force,
    )
    s = run_etl(cfg)
    status = "already up to date" if s.get("skipped") else "done"
    rows = ", ".join(f"{k}: {v:,}" for k, v in s["rows"].items())
    dropped = s["bad_rows"]["dropped_total"]
    print(f"{s['dataset']}: {status} -> {s['path']} ({rows}; bad rows dropped: {dropped:,})")
    print(json.dumps({"cardinalities": s["cardinalities"], "timings_s": s["timings_s"]}))
    return 0


def skip_tensorflow() -> None:
    """Keep TensorFlow out of this process: Merlin imports it only to register dtype mappings
    the ETL never uses, and that import is most of the command's start-up time (3-18 s here).
    MMREC_ETL_TENSORFLOW=1 turns this off."""
    if "tensorflow" not in sys.modules and os.environ.get("MMREC_ETL_TENSORFLOW") != "1":
        sys.modules["tensorflow"] = None  # makes `import tensorflow` raise ImportError
